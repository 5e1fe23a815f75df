"""Who is signed in to the desk, what their role admits, and the CSRF-checked form of a POST.

``DeskUserDep`` loads the session's user from the database on every request, so a deactivated user
is signed out and a changed role applies at the next click. ``desk_role(Role.x)`` admits that role
and every role above it, exactly as ``app.auth.deps.require`` does for API keys. ``PostedForm``
parses a urlencoded form and refuses it (403) unless its CSRF token and origin check out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData

from app.auth.models import User
from app.auth.roles import Role
from app.auth.service import Principal
from app.config import Settings
from app.db import get_database
from app.errors import Forbidden, Unprocessable
from app.ratelimit import enforce_write_limit
from app.web import session as desk_session

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SignInRequired(Exception):
    """Raised by the desk dependencies; the desk route class answers with a redirect to sign-in."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


@dataclass(frozen=True)
class DeskUser:
    principal: Principal
    session: desk_session.DeskSession
    csrf: str

    @property
    def id(self) -> int:
        return self.principal.user_id

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def name(self) -> str:
        return self.principal.name

    def has(self, role: Role) -> bool:
        return self.principal.has(role)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _next_url(request: Request) -> str:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    return "/desk/signin?next=" + quote(target, safe="")


def optional_desk_user(request: Request) -> DeskUser | None:
    """The signed-in user, or None (no cookie, a bad one, an inactive user, a changed password)."""
    settings = settings_of(request)
    found = desk_session.read(settings, request.cookies.get(desk_session.COOKIE_NAME))
    if found is None:
        return None
    with get_database(request).read_session() as db:
        user = db.get(User, found.user_id)
        if user is None or not user.active or desk_session.credential_version(user.password_hash) != found.version:
            return None
        assert user.id is not None
        principal = Principal(user.id, Role(user.role), user.email, user.name, None)
    desk = DeskUser(principal=principal, session=found, csrf=desk_session.csrf_token(settings, found))
    request.state.desk_user = desk
    return desk


def desk_user(request: Request) -> DeskUser:
    found = optional_desk_user(request)
    if found is None:
        raise SignInRequired(_next_url(request))
    return found


DeskUserDep = Annotated[DeskUser, Depends(desk_user)]
OptionalDeskUserDep = Annotated[DeskUser | None, Depends(optional_desk_user)]


def desk_role(role: Role) -> object:
    """A dependency admitting ``role`` and every role above it (sign-in first, then 403)."""

    def _check(user: DeskUserDep) -> DeskUser:
        if not user.has(role):
            raise Forbidden(f"This page needs the {role.value} role or above; you are {user.role.value}.")
        return user

    return Depends(_check)


Viewer = Annotated[DeskUser, desk_role(Role.viewer)]
Contributor = Annotated[DeskUser, desk_role(Role.contributor)]
Checker = Annotated[DeskUser, desk_role(Role.checker)]
Editor = Annotated[DeskUser, desk_role(Role.editor)]
Admin = Annotated[DeskUser, desk_role(Role.admin)]


def check_origin(request: Request) -> None:
    """Refuse cross-site unsafe requests: Sec-Fetch-Site and Origin, whenever the browser sends them."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("This form was sent from another site; reload the page and try again.")
    if site == "same-origin":
        return  # the browser's own word (page scripts cannot set it); Origin may be "null" under no-referrer
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {request.headers.get("host", "").lower(), urlsplit(settings_of(request).public_base_url).netloc.lower()}
    if origin == "null" or urlsplit(origin).netloc.lower() not in allowed:
        raise Forbidden("This form was sent from another site; reload the page and try again.")


def check_csrf(request: Request, user: DeskUser, presented: str | None, *, spend: bool = True) -> None:
    check_origin(request)
    if not desk_session.csrf_matches(settings_of(request), user.session, presented):
        raise Forbidden("The form's security token is missing or out of date; reload the page and try again.")
    # The desk's writes spend the same per-person budget as an API key's (CLAIMDESK_RATE_LIMIT_WRITES).
    if spend:
        enforce_write_limit(request, user_id=user.principal.user_id, api_key_id=None)


class Form:
    """A posted form, read as stripped text; NUL characters are refused as the API refuses them."""

    def __init__(self, data: FormData) -> None:
        self._data = data

    def get(self, name: str, default: str = "") -> str:
        value = self._data.get(name)
        if not isinstance(value, str):
            return default
        if "\x00" in value:
            raise Unprocessable(f"The field {name} contains a NUL character.", errors=[{"loc": ["body", name]}])
        return value.strip()

    def optional(self, name: str) -> str | None:
        return self.get(name) or None

    def getlist(self, name: str) -> list[str]:
        return [v.strip() for v in self._data.getlist(name) if isinstance(v, str) and "\x00" not in v]

    def values(self) -> dict[str, str]:
        """Everything typed, to fill the form again after a refusal (the CSRF token left out)."""
        return {k: v for k, v in self._data.items() if isinstance(v, str) and k != CSRF_FIELD}


async def _checked(request: Request, user: DeskUser, *, spend: bool, max_fields: int) -> Form:
    data = await request.form(max_files=0, max_fields=max_fields)
    presented = data.get(CSRF_FIELD)
    token = presented if isinstance(presented, str) else request.headers.get(CSRF_HEADER)
    check_csrf(request, user, token, spend=spend)
    return Form(data)


async def checked_form(request: Request, user: DeskUserDep) -> Form:
    return await _checked(request, user, spend=True, max_fields=200)


PostedForm = Annotated[Form, Depends(checked_form)]


async def checked_signout(request: Request, user: DeskUserDep) -> Form:
    # Signing out changes nothing stored, and must work even when the write budget is spent.
    return await _checked(request, user, spend=False, max_fields=20)


SignOutForm = Annotated[Form, Depends(checked_signout)]


def csrf_header_checked(request: Request, user: DeskUserDep) -> DeskUser:
    """For requests whose body is not a urlencoded form (the evidence upload): the token in a header."""
    check_csrf(request, user, request.headers.get(CSRF_HEADER))
    return user


CsrfHeaderUser = Annotated[DeskUser, Depends(csrf_header_checked)]
