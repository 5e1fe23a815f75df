"""The work queue: which queued claim comes next, and handing it to exactly one checker.

Order: priority (urgent first), due_at (soonest first, none last), created_at, id.
PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent callers each take a different row without
waiting on one another. SQLite: the write transaction began with BEGIN IMMEDIATE, so callers are
serialised and the second sees the first one's claim already in_progress.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims.models import Claim, ClaimTag
from app.claims.states import State
from app.config import Settings

# Matches ix_claims_queue_order column for column (due_sort puts claims without a deadline last).
QUEUE_ORDER: tuple[Any, ...] = (
    col(Claim.priority_rank),
    col(Claim.due_sort),
    col(Claim.created_at),
    col(Claim.id),
)


def _queued(tags: list[str] | None) -> sa.Select[Any]:
    stmt = sa.select(Claim).where(col(Claim.state) == State.queued.value)
    if tags:
        stmt = stmt.where(
            sa.exists().where(col(ClaimTag.claim_id) == col(Claim.id), col(ClaimTag.tag).in_([t.lower() for t in tags]))
        )
    return stmt.order_by(*QUEUE_ORDER)


def take_next(
    session: Session, *, principal: Principal, settings: Settings, tags: list[str] | None = None
) -> Claim | None:
    """Assign the first queued claim to the caller and start it; None when nothing is queued."""
    stmt = _queued(tags).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Claim)
    claim = session.execute(stmt).scalars().first()
    if claim is None:
        return None
    assert claim.id is not None
    claims_service.start_for(
        session, claim=claim, principal=principal, assignee_id=principal.user_id, settings=settings
    )
    return claim


def list_queue(session: Session, *, tags: list[str] | None, offset: int, limit: int) -> list[Claim]:
    return list(session.execute(_queued(tags).offset(offset).limit(limit + 1)).scalars())
