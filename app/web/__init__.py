"""The desk in a browser: server-rendered pages under /desk on the same service functions as the API.

How to add a page
-----------------
1. Write a module ``app/web/<area>.py`` with ``router = APIRouter(route_class=DeskRoute)`` and add it
   to ``PAGE_MODULES`` below (the router is mounted under ``/desk``). ``DeskRoute`` makes an uncaught
   ``DomainError`` an HTML error page with the problem's status, and a missing sign-in a redirect.
2. Authorise with the dependencies in ``app.web.deps``: ``Viewer``, ``Contributor``, ``Checker``,
   ``Editor``, ``Admin`` (each a signed-in ``DeskUser`` whose role admits it; ``user.principal`` is
   the same ``Principal`` the API's services take, with ``api_key_id=None``).
3. Read with ``get_database(request).read_session()`` and call the service functions the API routers
   call (``app.claims.service``, ``app.intake.service``, ``app.webhooks.service`` ...). Never restate
   a rule here: the services refuse, the page shows the refusal.
4. Render with ``app.web.render.page(request, "<area>.html", title=..., active="<nav entry>", ...)``;
   templates extend ``base.html`` and import the macros as ``m`` (``m.csrf_field(csrf)``,
   ``m.problem(problem)``, ``m.priority``, ``m.state``, ``m.due``, ``m.invalid(problem, "field")``).
5. Forms post ``application/x-www-form-urlencoded`` to a sync handler taking ``form: PostedForm``:
   that dependency has already checked the CSRF token (every form carries ``{{ m.csrf_field(csrf) }}``;
   ``fetch``/XHR sends the header ``X-CSRF-Token`` instead, from ``<meta name="csrf-token">``) and
   Origin/Sec-Fetch-Site. Read fields with ``form.get("name")`` / ``form.optional("name")``.
6. Write inside ``with get_database(request).transaction() as session:`` around the service call. On
   success answer ``see_other(url, ok="<key in render.FLASH>")`` (Post/Redirect/Get). On
   ``except DomainError as exc`` re-render the same page with ``status=exc.status``,
   ``problem=problem_of(exc)`` and the typed values from ``form.values()`` so nothing is lost; the
   problem box is ``role="alert"`` and fields it names get ``aria-invalid`` via ``m.invalid``.
7. Static files live in ``app/web/static`` (``{{ static('x.css') }}``); the CSP allows only 'self':
   no inline ``<script>``/``style=""``, no CDN. Shortcut keys: give a button ``data-shortcut="x"``.

Tests live in ``tests/web/`` (``tests/web/conftest.py`` has ``signed_in`` helpers).
"""

from __future__ import annotations

from importlib import import_module

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.staticfiles import StaticFiles

from app.web.deps import DeskUserDep
from app.web.render import STATIC, DeskRoute, Problem, page
from app.web.session import SignInThrottle, secret_key

PAGE_MODULES = ("signin", "queue", "claim", "review", "intake", "admin")


def build_router() -> APIRouter:
    router = APIRouter(prefix="/desk", include_in_schema=False)
    for name in PAGE_MODULES:
        try:
            module = import_module(f"app.web.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"app.web.{name}":
                raise
            continue  # a page area not built yet
        router.include_router(module.router)
    router.include_router(_not_found)  # last: only what no page claimed
    return router


_not_found = APIRouter(route_class=DeskRoute)


@_not_found.get("/{rest:path}")
def desk_not_found(request: Request, user: DeskUserDep, rest: str) -> Response:
    """An unknown desk address is a page that says so (signed out: the sign-in page first)."""
    return page(
        request,
        "error.html",
        title="Not found",
        status=404,
        problem=Problem(404, "Not found", "There is no such page on the desk."),
    )


def install(app: FastAPI) -> None:
    """Mount the desk's pages and static files on ``app``."""
    secret_key(app.state.settings)  # without CLAIMDESK_SECRET_KEY: make this process's key now, and say so
    app.state.desk_throttle = SignInThrottle()
    # The static files first: the pages' catch-all "not found" must not answer for them.
    app.mount("/desk/static", StaticFiles(directory=str(STATIC)), name="desk-static")
    app.include_router(build_router())
