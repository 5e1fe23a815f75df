"""Rendering desk pages: the Jinja environment, the page response, refusals shown in place.

``page(request, "x.html", title=..., **context)`` renders a template that extends ``base.html``;
every page gets ``me`` (the signed-in DeskUser or None), ``csrf`` (for hidden fields), ``flash``
(the message named by ``?ok=`` after a redirect) and ``active`` (the nav entry to highlight).

``problem_of(exc)`` turns a DomainError into what ``_macros.html``'s ``problem()`` shows in place:
the detail, plus the fields it names, the actions allowed and what is missing.

``DeskRoute`` is the route class of every desk router: a DomainError nobody caught becomes an HTML
page with the problem's status, and a missing sign-in becomes a redirect to the sign-in page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.clock import clock
from app.db import CommitOnReturn
from app.errors import DomainError, Unprocessable
from app.web.deps import SignInRequired

log = logging.getLogger("claimdesk.desk")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Desk pages load nothing from elsewhere and run no inline script or style.
DESK_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# same-origin (not the API's no-referrer) so that browsers send a real Origin on the desk's own forms.
PAGE_HEADERS = {"Content-Security-Policy": DESK_CSP, "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}

# What ``?ok=<key>`` shows after a redirect: fixed texts, so nothing from the URL is echoed.
FLASH = {
    "signed_out": "You are signed out.",
    "taken": "This claim is yours now: it was next in the queue.",
    "queue_empty": "Nothing is queued right now.",
    "verdict": "Verdict saved.",
    "evidence": "Evidence added.",
    "comment": "Comment added.",
    "retracted": "Evidence retracted.",
    "edited": "Claim updated.",
    "unchanged": "Nothing changed.",
    "queue": "Queued.",
    "reject": "Rejected.",
    "restore": "Restored to submitted.",
    "start": "Started: the claim is yours.",
    "release": "Released back to the queue.",
    "submit": "Submitted for review.",
    "request_changes": "Sent back to the checker with your comment.",
    "approve": "Approved.",
    "reopen": "Reopened.",
    "saved": "Saved.",
    "created": "Created.",
}

ACTION_LABELS = {
    "queue": "Queue",
    "reject": "Reject",
    "restore": "Restore",
    "start": "Start",
    "release": "Release",
    "submit": "Submit for review",
    "request_changes": "Request changes",
    "approve": "Approve and publish",
    "reopen": "Reopen",
}

STATE_LABELS = {
    "submitted": "Submitted",
    "queued": "Queued",
    "in_progress": "In progress",
    "in_review": "In review",
    "published": "Published",
    "rejected": "Rejected",
}


def _when(value: datetime | None, fmt: str = "%d %b %Y, %H:%M UTC") -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime(fmt)


def _relative(value: datetime | None) -> str:
    """'in 3 h' / '2 d ago': short, for lists."""
    if value is None:
        return ""
    seconds = (value - clock.now()).total_seconds()
    ahead = seconds >= 0
    span = abs(seconds)
    if span < 90:
        text = "under a minute" if span < 60 else "1 min"
    elif span < 5400:
        text = f"{round(span / 60)} min"
    elif span < 2 * 86400:
        text = f"{round(span / 3600)} h"
    else:
        text = f"{round(span / 86400)} d"
    return f"in {text}" if ahead else f"{text} ago"


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def _label(value: str | None) -> str:
    if not value:
        return ""
    return STATE_LABELS.get(value) or ACTION_LABELS.get(value) or value.replace("_", " ").capitalize()


def _static_url(name: str) -> str:
    return f"/desk/static/{name}?v={__version__}"


environment = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=_when, relative=_relative, iso=_iso, size=_size, label=_label)
environment.globals.update(static=_static_url, version=__version__, ACTION_LABELS=ACTION_LABELS)


@dataclass
class Problem:
    """A refusal as a person reads it, shown next to the form that caused it."""

    status: int
    title: str
    detail: str
    fields: list[str] = field(default_factory=list)
    allowed_actions: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def problem_of(exc: DomainError) -> Problem:
    fields: list[str] = []
    for err in exc.extra.get("errors") or []:
        loc = [str(p) for p in (err.get("loc") or []) if p not in ("body", "query", "path")]
        if loc and loc[0] not in fields:
            fields.append(loc[0])
    return Problem(
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        fields=fields,
        allowed_actions=[str(a) for a in exc.extra.get("allowed_actions") or []],
        missing=[str(m) for m in exc.extra.get("missing") or []],
    )


def invalid_input(exc: ValidationError, what: str) -> Unprocessable:
    """A form that does not make a valid request body, as the 422 the API would answer."""
    errors = [
        {"loc": ["body", *[str(p) for p in err["loc"]]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    parts = []
    for err in errors[:4]:
        name = str(err["loc"][1]).replace("_", " ") if len(err["loc"]) > 1 else "form"
        parts.append(f"{name}: {str(err['msg']).removeprefix('Value error, ')}")
    return Unprocessable(f"{what}. " + "; ".join(parts) + ".", errors=errors)


def page(
    request: Request,
    template: str,
    *,
    title: str,
    status: int = 200,
    active: str = "",
    problem: Problem | None = None,
    **context: Any,
) -> HTMLResponse:
    ok = request.query_params.get("ok", "")
    me = getattr(request.state, "desk_user", None)
    html = environment.get_template(template).render(
        request=request,
        me=me,
        csrf=me.csrf if me else "",
        title=title,
        active=active,
        flash=FLASH.get(ok, ""),
        problem=problem,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def see_other(url: str, ok: str | None = None) -> RedirectResponse:
    """Post/Redirect/Get: after a change, the browser loads the page afresh (a reload repeats nothing)."""
    if ok:
        path, hash_, fragment = url.partition("#")
        url = path + ("&" if "?" in path else "?") + "ok=" + ok + hash_ + fragment
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, exc: DomainError) -> HTMLResponse:
    return page(
        request,
        "error.html",
        title=exc.title,
        status=exc.status,
        problem=problem_of(exc),
    )


class DeskRoute(CommitOnReturn):
    """Desk routes answer in HTML: a refusal nobody caught is a page, a missing sign-in a redirect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def desk_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                if request.method in ("GET", "HEAD"):
                    return see_other(exc.next_url)
                return page(
                    request,
                    "error.html",
                    title="Signed out",
                    status=401,
                    problem=Problem(401, "Signed out", "Your session has ended: sign in again, then retry."),
                )
            except DomainError as exc:
                if exc.status >= 500:
                    log.error("desk refusal with status %s: %s", exc.status, exc.detail)
                return error_page(request, exc)
            except RequestValidationError:
                return page(
                    request,
                    "error.html",
                    title="Not found",
                    status=404,
                    problem=Problem(404, "Not found", "There is no such page on the desk."),
                )
            except StarletteHTTPException as exc:
                if exc.status_code == 413:
                    raise  # the body-limit answer stays problem+json
                return page(
                    request,
                    "error.html",
                    title="Error",
                    status=exc.status_code,
                    problem=Problem(exc.status_code, "Error", str(exc.detail)),
                )

        return desk_handler
