"""Request ids, access logs, Prometheus metrics and security headers, as one ASGI middleware
(one layer instead of four keeps the per-request overhead small)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import request_id_var
from app.errors import PROBLEM_BASE
from app.ratelimit import STATE_HEADERS

log = logging.getLogger("claimdesk.access")
errors_log = logging.getLogger("claimdesk")

# The API's evidence upload and the desk's (same streaming code, same upload limit).
UPLOAD_PATH = re.compile(r"^(/api/v1/claims/[^/]+/evidence|/desk/claims/[^/]+/evidence/file)$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

# For HTML that did not set its own policy (pages that do, like the public fact-checks and the desk,
# keep theirs): nothing but our own styles and images, never framed.
HTML_CSP = (
    b"default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# FastAPI's /docs and /redoc load their bundles from jsDelivr (and ReDoc its fonts from Google) and
# start them with an inline script; they show only our own OpenAPI document.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    b"style-src 'self' https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'; "
    b"font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    b"connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")

INTERNAL_ERROR = {
    "type": PROBLEM_BASE + "internal-error",
    "title": "Internal Server Error",
    "status": 500,
    "detail": "Something went wrong on our side; the request id helps us find it.",
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "claimdesk_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "claimdesk_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge("claimdesk_http_requests_in_flight", "Requests being served.", registry=self.registry)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_ID.match(incoming) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = [500]
        response_started = [False]
        raw_id = request_id.encode()
        # Shared with request.state: the write limiter leaves its RateLimit fields here.
        state = scope.setdefault("state", {})
        is_docs = str(scope.get("path", "")).startswith(DOCS_PATHS)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                response_started[0] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", raw_id))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                for name, value in state.get(STATE_HEADERS) or ():
                    if name not in present:
                        headers.append((name, value))
                if b"content-security-policy" not in present:
                    ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                    if ctype.lower().startswith(b"text/html"):
                        headers.append((b"content-security-policy", DOCS_CSP if is_docs else HTML_CSP))
                message["headers"] = headers
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # Starlette answers an unhandled error outside every middleware, so that answer would
            # lack the request id and the security headers; answer here instead, while both are known.
            if response_started[0]:
                raise
            errors_log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await _send_problem(send_wrapper, 500, INTERNAL_ERROR)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(template, method, str(status_holder[0])).inc()
            self.metrics.latency.labels(template, method).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s %.1fms",
                    method,
                    template,
                    status_holder[0],
                    elapsed * 1000,
                )
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            # exc_text when set: RedactSecretsFilter has already masked it.
            body["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


# Libraries whose debug (or, for httpx, info) output carries what must never be logged: request
# headers and signatures (botocore), full URLs, whose path is the credential for Slack-style hooks
# (httpx, httpcore, urllib3), SQL parameters (sqlalchemy). They stay at WARNING whatever
# CLAIMDESK_LOG_LEVEL says.
QUIET_LIBRARIES = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "httpx",
    "httpcore",
    "sqlalchemy",
    "multipart",
    "python_multipart",
)

# A second line of defence for our own lines and tracebacks (a driver error can quote the SQL
# parameters it failed on): API keys, webhook secrets and Authorization values are masked.
_SECRET_TEXT = re.compile(r"(cdk_|whsec_)[A-Za-z0-9_\-+/]{20,}=*|((?i:bearer|basic)\s+)[^\s\"',;]+")


def redact(text: str) -> str:
    return _SECRET_TEXT.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(level: str = "INFO", *, as_json: bool = False) -> None:
    root = logging.getLogger()
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    if any(getattr(h, "_claimdesk", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler()
    handler._claimdesk = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())


class BodyLimitMiddleware:
    """Refuses JSON (and form) bodies over the limit with 413, counting bytes as they arrive so a
    missing or false Content-Length does not get past it. Multipart uploads have their own limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        ctype = (_header(scope, b"content-type") or "").lower()
        if ctype.startswith("multipart/") and UPLOAD_PATH.match(scope.get("path", "")):
            # The evidence upload streams and enforces CLAIMDESK_MAX_UPLOAD_BYTES itself; every other
            # route gets the small limit whatever the content type, before anything reads the body.
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        seen = 0
        limit = self.max_bytes

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            # Only reached when the app let it escape before starting a response.
            await _too_large(send, self.max_bytes)


class _BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI's body reader lets it through to the problem handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is over the {limit}-byte limit for JSON.")


async def _send_problem(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "https://claimdesk.dev/problems/payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"The request body is over the {limit}-byte limit for JSON.",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
