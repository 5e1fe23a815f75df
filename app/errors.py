"""Domain errors and their RFC 9457 problem+json rendering.

Services raise DomainError subclasses; routers never build HTTP errors themselves. The handlers in
app.main turn each into an ``application/problem+json`` response. ``extra`` carries the members a
client can act on (``allowed_actions``, ``missing``, ``errors``...).
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://claimdesk.dev/problems/"


class DomainError(Exception):
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(DomainError):
    status, slug, title = 400, "bad-request", "Bad request"


class InvalidCursor(DomainError):
    status, slug, title = 400, "invalid-cursor", "Invalid cursor"


class Unauthorized(DomainError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str = "A valid API key is required (Authorization: Bearer cdk_...).") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="claimdesk"'})


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(DomainError):
    status, slug, title = 410, "gone", "Gone"


class PreconditionFailed(DomainError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(DomainError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(DomainError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class RangeNotSatisfiable(DomainError):
    status, slug, title = 416, "range-not-satisfiable", "Range not satisfiable"


class Unprocessable(DomainError):
    status, slug, title = 422, "validation-error", "Unprocessable content"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        # Every entry of `errors` has loc, msg and type, as the documented Problem schema says;
        # a raiser that names only the field gets the detail as its message.
        if isinstance(extra.get("errors"), list):
            extra["errors"] = [{"msg": detail, "type": "value_error", **e} for e in extra["errors"]]
        super().__init__(detail, headers=headers, **extra)


class TooManyRequests(DomainError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailable(DomainError):
    status, slug, title = 503, "unavailable", "Service unavailable"


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for an error answered as problem+json."""
    return {"description": description, "content": {"application/problem+json": {}}}
