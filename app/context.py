"""Per-request context: the request id (for logs and audit) and the acting principal."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
