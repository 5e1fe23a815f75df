"""Signing in and out of the desk."""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from app.auth import passwords
from app.auth.models import User
from app.config import Settings
from app.db import get_database
from app.errors import TooManyRequests, Unauthorized
from app.web import session as desk_session
from app.web.deps import OptionalDeskUserDep, SignOutForm, check_origin, settings_of
from app.web.render import DeskRoute, page, problem_of, see_other

log = logging.getLogger("claimdesk.desk")

router = APIRouter(route_class=DeskRoute)

WRONG = "The email or password is not right, or the account is inactive."

_dummy_hash: str | None = None
_dummy_lock = threading.Lock()


def _dummy() -> str:
    """A real hash to verify against when the user is unknown, so both failures take as long."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = passwords.hash_password("not a password of anyone's")
        return _dummy_hash


def safe_next(raw: str | None) -> str:
    """Only a path on the desk: never another site (an open redirect) nor a scheme-relative URL."""
    if not raw or not raw.startswith("/desk") or raw.startswith("//") or "\\" in raw or "\n" in raw:
        return "/desk/"
    return raw


@router.get("/signin")
def signin_page(request: Request, user: OptionalDeskUserDep, next: str = "") -> Response:
    if user is not None:
        return see_other(safe_next(next))
    return page(request, "signin.html", title="Sign in", next=safe_next(next), email="")


def _verify(request: Request, email: str, password: str) -> User | None:
    with get_database(request).read_session() as db:
        user = db.execute(sa.select(User).where(col(User.email) == email)).scalar_one_or_none()
    if user is None or not user.password_hash:
        passwords.verify_password(_dummy(), password)
        return None
    if not passwords.verify_password(user.password_hash, password) or not user.active:
        return None
    return user


@router.post("/signin")
async def signin(request: Request) -> Response:
    check_origin(request)
    form = await request.form(max_files=0, max_fields=10)
    email = str(form.get("email") or "").strip().lower()[:320]
    password = str(form.get("password") or "")[:1024]
    target = safe_next(str(form.get("next") or ""))
    client = request.client.host if request.client else "-"
    settings: Settings = settings_of(request)

    def refuse(exc: TooManyRequests | Unauthorized) -> Response:
        response = page(
            request,
            "signin.html",
            title="Sign in",
            status=exc.status,
            problem=problem_of(exc),
            next=target,
            email=email,
        )
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = exc.headers["Retry-After"]
        return response

    throttle: desk_session.SignInThrottle = request.app.state.desk_throttle
    wait, attempt = throttle.reserve(email, client)
    if wait:
        return refuse(
            TooManyRequests(
                f"Too many failed sign-ins: try again in {wait} seconds.", headers={"Retry-After": str(wait)}
            )
        )
    user = await run_in_threadpool(_verify, request, email, password)
    if user is None or user.id is None:
        log.info("desk sign-in refused for %r from %s", email, client)
        return refuse(Unauthorized(WRONG))
    throttle.succeeded(email, client, attempt)
    cookie, _ = desk_session.issue(settings, user_id=user.id, password_hash=user.password_hash)
    response = see_other(target)
    response.set_cookie(
        desk_session.COOKIE_NAME,
        cookie,
        max_age=desk_session.LIFETIME_SECONDS,
        path=desk_session.COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=desk_session.cookie_is_secure(settings),
    )
    log.info("desk sign-in: user %s", user.id)
    return response


@router.post("/signout")
def signout(request: Request, form: SignOutForm) -> Response:
    response = see_other("/desk/signin", ok="signed_out")
    response.delete_cookie(desk_session.COOKIE_NAME, path=desk_session.COOKIE_PATH, httponly=True, samesite="lax")
    return response
