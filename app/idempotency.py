"""Idempotency-Key for creating POSTs.

A retry with the same key and body gets the first response again; the same key with another body
is 422; a retry while the first request is still running is 409. The stored response commits in
the same transaction as the resource, so a replay can never point at something that was rolled
back. Concurrency: on SQLite writers are serialised (BEGIN IMMEDIATE), so a retry waits and then
replays; on PostgreSQL a transaction-scoped advisory lock on the key tells a running twin apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.audit.models import IdempotencyRecord
from app.clock import clock
from app.errors import Conflict, Unprocessable

RETENTION = timedelta(hours=48)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]
    location: str | None


def fingerprint(route: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()


def check(session: Session, *, api_key_id: int | None, key: str | None, fp: str) -> Replay | None:
    """Call before doing the work. Returns the stored response to replay, or None to proceed."""
    if key is None or api_key_id is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Unprocessable(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters.",
            errors=[{"loc": ["header", "Idempotency-Key"]}],
        )
    if session.get_bind().dialect.name == "postgresql":
        got = session.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(hashtext('idem'), hashtext(:k))"),
            {"k": f"{api_key_id}:{key}"},
        ).scalar_one()
        if not got:
            raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly.")
    row = session.execute(
        sa.select(IdempotencyRecord).where(
            col(IdempotencyRecord.api_key_id) == api_key_id, col(IdempotencyRecord.key) == key
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.created_at < clock.now() - RETENTION:
        session.delete(row)
        session.flush()
        return None
    if row.fingerprint != fp:
        raise _reused()
    return Replay(row.status_code, row.response, row.location)


def _reused() -> Unprocessable:
    return Unprocessable(
        "This Idempotency-Key was used with a different request body.",
        errors=[{"loc": ["header", "Idempotency-Key"], "msg": "reused with another body"}],
    )


def find(session: Session, *, api_key_id: int | None, key: str | None, fp: str) -> Replay | None:
    """A read-only look for a stored first response (no locks, no clean-up): lets a route answer a
    retry before re-checking rules that the first request already passed."""
    if key is None or api_key_id is None or not key or len(key) > MAX_KEY_LENGTH:
        return None
    row = session.execute(
        sa.select(IdempotencyRecord).where(
            col(IdempotencyRecord.api_key_id) == api_key_id, col(IdempotencyRecord.key) == key
        )
    ).scalar_one_or_none()
    if row is None or row.created_at < clock.now() - RETENTION:
        return None
    if row.fingerprint != fp:
        raise _reused()
    return Replay(row.status_code, row.response, row.location)


def remember(
    session: Session,
    *,
    api_key_id: int | None,
    key: str | None,
    fp: str,
    status_code: int,
    body: dict[str, Any],
    location: str | None,
) -> None:
    if key is None or api_key_id is None:
        return
    session.add(
        IdempotencyRecord(
            api_key_id=api_key_id,
            key=key,
            fingerprint=fp,
            status_code=status_code,
            response=json.loads(json.dumps(body, default=str)),
            location=location,
            created_at=clock.now(),
        )
    )
    session.flush()


def purge_expired(session: Session) -> int:
    result = session.execute(
        sa.delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < clock.now() - RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
