"""The application factory: routers, problem+json handlers, middleware, lifespan."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.auth.router import router as auth_router
from app.claims.router import router as claims_router
from app.config import Settings, get_settings
from app.db import Database, make_database
from app.errors import PROBLEM_BASE, DomainError
from app.evidence.router import router as evidence_router
from app.evidence.storage import make_blob_store
from app.intake.router import router as intake_router
from app.migrate import current_revision, head_revision
from app.observability import BodyLimitMiddleware, Metrics, RequestContextMiddleware, configure_logging
from app.openapi import install as install_openapi
from app.publishing.ratings import scale_for
from app.publishing.router import api_router as publishing_router
from app.publishing.router import public_router
from app.queue.router import router as queue_router
from app.review.router import router as review_router
from app.web import install as install_desk
from app.webhooks.router import router as webhooks_router
from app.worker import in_process_worker_wanted, install_metrics, start_in_process

log = logging.getLogger("claimdesk")

PROBLEM_TYPE = "application/problem+json"
# What FastAPI's body reader raises (as a 400) when the bytes cannot be decoded at all.
BODY_PARSE_ERROR = "There was an error parsing the body"

DESCRIPTION = """
Claimdesk tracks each claim a verification desk checks, from intake to a published verdict.

* **Workflow** (where a claim is): submitted → queued → in_progress → in_review → published, or
  rejected. **Verdict** (what the desk concluded) is separate.
* **Auth**: `Authorization: Bearer cdk_...`. Roles: viewer < contributor < checker < editor < admin.
* **Errors** are RFC 9457 `application/problem+json`.
* **Concurrency**: reads return `ETag`; send `If-Match` on changes to get 412 instead of a lost update.
* **Retries**: `Idempotency-Key` on creating POSTs.
"""


DATABASE_RETRY_AFTER_SECONDS = 2


def database_unavailable(exc: sa.exc.DBAPIError) -> bool:
    """Whether a database error means "not reachable or too busy now" (503: retry later) rather
    than a fault of ours (500): a connection that failed or was lost, PostgreSQL shutting down or
    not accepting connections yet, SQLite's write lock not coming free in time."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return any(sign in text for sign in ("database is locked", "unable to open database", "disk i/o error"))
    if isinstance(orig, psycopg.OperationalError):
        # No SQLSTATE: the connection itself failed. Class 08: connection exception; 57P01-57P03:
        # the server shutting down, crashed or still starting up (not 57014, a cancelled query).
        state = orig.sqlstate
        return state is None or state.startswith(("08", "57P"))
    return False


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return JSONResponse(
            exc.to_problem(instance=request.url.path),
            status_code=exc.status,
            media_type=PROBLEM_TYPE,
            headers=exc.headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) or e["loc"][0] for e in errors[:5])
        return problem(
            422,
            f"The request is not valid: {fields}." if fields else "The request is not valid.",
            slug="validation-error",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
            # FastAPI answers 422 to a body that is not JSON but 400 to one that is not even text
            # (invalid UTF-8); both are the same mistake, so both are 422 like any invalid body.
            return problem(
                422,
                "The request body is not valid JSON.",
                slug="validation-error",
                instance=request.url.path,
                errors=[{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}],
            )
        if exc.status_code == 404:
            detail = f"No route {request.url.path}."
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        else:
            detail = str(exc.detail)
        return problem(exc.status_code, detail, instance=request.url.path, headers=dict(exc.headers or {}))

    @app.exception_handler(sa.exc.DBAPIError)
    async def _database_error(request: Request, exc: sa.exc.DBAPIError) -> Response:
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem(
            503,
            "The database is not reachable or too busy just now; nothing was changed. Retry shortly.",
            slug="database-unavailable",
            instance=request.url.path,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Something went wrong on our side; the request id helps us find it.",
            slug="internal-error",
            instance=request.url.path,
        )


def create_app(
    settings: Settings | None = None, database: Database | None = None, start_worker: bool | None = None
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, as_json=settings.log_json)
    database = database or make_database(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = start_in_process(app)  # only when app.state.start_worker
        yield
        if worker is not None:
            worker.stop()
        await database.dispose_loop_reads()
        if app.state.owns_database:
            database.dispose()

    app = FastAPI(
        title="Claimdesk",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={500: {"description": "Unexpected error", "content": {PROBLEM_TYPE: {}}}},
    )
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = metrics
    app.state.owns_database = True
    app.state.head_revision = head_revision()
    app.state.start_worker = in_process_worker_wanted() if start_worker is None else start_worker
    install_metrics(app)
    app.state.blob_store = make_blob_store(settings)
    scale_for(settings.rating_scale)  # a broken CLAIMDESK_RATING_SCALE file fails at start, not mid-request

    _install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_json_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    app.include_router(claims_router)
    app.include_router(queue_router)
    app.include_router(review_router)
    app.include_router(evidence_router)
    app.include_router(intake_router)
    app.include_router(publishing_router)
    app.include_router(public_router)
    app.include_router(auth_router)
    app.include_router(webhooks_router)
    install_desk(app)
    _install_operations(app)
    install_openapi(app)
    return app


def _install_operations(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="The database answers and its schema is at the migrations' head",
        responses={503: {"description": "Not ready", "content": {PROBLEM_TYPE: {}}}},
    )
    def readyz(request: Request) -> Any:
        database: Database = request.app.state.database
        try:
            current = current_revision(database.read_engine)
        except Exception as exc:  # any driver error means "not ready"
            return problem(503, f"The database is not reachable: {type(exc).__name__}.", slug="not-ready")
        head = request.app.state.head_revision
        if current != head:
            return problem(
                503,
                f"Migrations are at {current}, head is {head}: run `claimdesk migrate`.",
                slug="not-ready",
            )
        return {"status": "ready", "database": database.dialect, "revision": current}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics_endpoint(request: Request) -> Response:
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
