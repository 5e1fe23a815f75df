"""The audit trail: append-only events with a hash chain per subject, and the outbox emit.

``record`` is the one way any change is announced: it writes the audit event and, unless told not
to, the outbox row in the caller's transaction, so both commit or neither does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.audit.models import AuditEvent, OutboxEvent
from app.clock import clock
from app.context import request_id_var

GENESIS = "0" * 64
_EVENTS: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]
_OUTBOX: sa.Table = OutboxEvent.__table__  # type: ignore[attr-defined]
# Core statements, built once: every change in the desk writes one event and usually one outbox row.
_LAST_IN_CHAIN = (
    sa.select(_EVENTS.c.seq, _EVENTS.c.hash)
    .where(_EVENTS.c.subject == sa.bindparam("subject"))
    .order_by(_EVENTS.c.seq.desc())
    .limit(1)
)
_INSERT_EVENT = _EVENTS.insert().returning(_EVENTS.c.id)
_INSERT_OUTBOX = _OUTBOX.insert()


@dataclass(frozen=True)
class Actor:
    """Who did something: a user through an API key, a signed-in user, or the system (None ids)."""

    user_id: int | None = None
    api_key_id: int | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls()


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """The audit event just written, as plain values (building the ORM entity would cost more than
    the insert)."""

    id: int
    subject: str
    seq: int
    claim_id: int | None
    type: str
    actor_id: int | None
    api_key_id: int | None
    request_id: str | None
    data: dict[str, Any]
    created_at: datetime
    prev_hash: str
    hash: str


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _stamp(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def event_hash(
    *,
    prev_hash: str,
    subject: str,
    seq: int,
    type_: str,
    actor_id: int | None,
    api_key_id: int | None,
    claim_id: int | None,
    data: dict[str, Any],
    created_at: datetime,
) -> str:
    body = _canonical(
        {
            "subject": subject,
            "seq": seq,
            "type": type_,
            "actor_id": actor_id,
            "api_key_id": api_key_id,
            "claim_id": claim_id,
            "data": data,
            "created_at": _stamp(created_at),
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Round-trip through JSON so what is hashed is exactly what the JSON column gives back."""
    loaded: dict[str, Any] = json.loads(_canonical(data))
    return loaded


def _lock_subject(session: Session, subject: str) -> None:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": subject})


def record(
    session: Session,
    *,
    type_: str,
    actor: Actor,
    subject: str,
    claim_id: int | None = None,
    data: dict[str, Any] | None = None,
    outbox_payload: dict[str, Any] | None = None,
    emit: bool = True,
    at: datetime | None = None,
) -> RecordedEvent:
    """Append an event to ``subject``'s chain and, with ``emit``, the matching outbox row."""
    # What the caller added to the session (the claim, say) must be in the database before the
    # event that names it; the event and outbox rows then go in as Core inserts, not through the ORM.
    session.flush()
    _lock_subject(session, subject)
    created_at = at or clock.now()
    payload = _jsonable(data or {})
    conn = session.connection()
    last = conn.execute(_LAST_IN_CHAIN, {"subject": subject}).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    actor_id, key_id = actor.user_id, actor.api_key_id
    digest = event_hash(
        prev_hash=prev,
        subject=subject,
        seq=seq,
        type_=type_,
        actor_id=actor_id,
        api_key_id=key_id,
        claim_id=claim_id,
        data=payload,
        created_at=created_at,
    )
    values: dict[str, Any] = {
        "subject": subject,
        "seq": seq,
        "claim_id": claim_id,
        "type": type_,
        "actor_id": actor_id,
        "api_key_id": key_id,
        "request_id": request_id_var.get(),
        "data": payload,
        "created_at": created_at,
        "prev_hash": prev,
        "hash": digest,
    }
    event_id = conn.execute(_INSERT_EVENT, values).scalar_one()
    if emit:
        conn.execute(
            _INSERT_OUTBOX,
            {
                "event_id": event_id,
                "type": type_,
                "claim_id": claim_id,
                "payload": _jsonable(outbox_payload if outbox_payload is not None else payload),
                "created_at": created_at,
                "dispatched_at": None,
            },
        )
    return RecordedEvent(id=event_id, **values)


@dataclass
class ChainProblem:
    subject: str
    seq: int
    problem: str


def verify_chains(session: Session, *, batch: int = 5000) -> tuple[int, list[ChainProblem]]:
    """Recompute every subject's chain. Returns (events checked, problems)."""
    problems: list[ChainProblem] = []
    expected: dict[str, tuple[int, str]] = {}
    checked = 0
    for event in _iter_events(session, batch=batch):
        checked += 1
        want_seq, want_prev = expected.get(event.subject, (1, GENESIS))
        if event.seq != want_seq:
            problems.append(ChainProblem(event.subject, event.seq, f"expected seq {want_seq} (event removed?)"))
        if event.prev_hash != want_prev:
            problems.append(ChainProblem(event.subject, event.seq, "prev_hash does not match the previous event"))
        digest = event_hash(
            prev_hash=event.prev_hash,
            subject=event.subject,
            seq=event.seq,
            type_=event.type,
            actor_id=event.actor_id,
            api_key_id=event.api_key_id,
            claim_id=event.claim_id,
            data=event.data,
            created_at=event.created_at,
        )
        if digest != event.hash:
            problems.append(ChainProblem(event.subject, event.seq, "hash does not match the event (altered?)"))
        expected[event.subject] = (event.seq + 1, event.hash)
    return checked, problems


def _iter_events(session: Session, *, batch: int) -> Iterator[AuditEvent]:
    last_subject, last_seq = "", 0
    while True:
        rows = (
            session.execute(
                sa.select(AuditEvent)
                .where(
                    sa.tuple_(col(AuditEvent.subject), col(AuditEvent.seq))
                    > sa.tuple_(sa.literal(last_subject), sa.literal(last_seq))
                )
                .order_by(col(AuditEvent.subject), col(AuditEvent.seq))
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last_subject, last_seq = rows[-1].subject, rows[-1].seq
        session.expunge_all()
