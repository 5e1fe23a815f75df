"""Timers the background worker runs: expired leases return claims to the queue, and due
re-checks of unverified/disputed verdicts bring published claims back for another look.

Each claim moves in its own short transaction through the transition table (system actions), so
one bad row cannot hold up the rest and a crash half-way loses nothing: the next tick finds what
is still due.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from app import idempotency
from app.claims import service as claims_service
from app.claims.models import Claim
from app.claims.states import Action, State
from app.clock import clock
from app.config import Settings
from app.db import Database

log = logging.getLogger("claimdesk.timers")

BATCH = 200
# Idempotency records older than their retention are swept this often.
SWEEP_SECONDS = 600.0
_next_sweep = 0.0


@dataclass
class TimerResult:
    leases_expired: int = 0
    rechecks_due: int = 0


def _move_due(database: Database, settings: Settings, *, state: State, due: Any, action: Action) -> int:
    """Move every claim in ``state`` whose ``due`` time has passed along ``action``, one short
    transaction per claim, re-checking the time under the row lock (the assignee may have renewed
    the lease, or an editor changed the verdict, since the scan)."""
    attribute = due.key
    with database.read_session() as session:
        ids = [
            cid
            for (cid,) in session.execute(
                sa.select(col(Claim.id))
                .where(col(Claim.state) == state.value, due.is_not(None), due <= clock.now())
                .order_by(due)
                .limit(BATCH)
            )
            if cid is not None
        ]
    moved = 0
    for claim_id in ids:
        with database.transaction() as session:
            claim = claims_service.lock_claim(session, claim_id)
            when = getattr(claim, attribute)
            if when is None or when > clock.now():
                continue
            if claims_service.system_action(session, claim_id=claim_id, action=action, settings=settings):
                moved += 1
    return moved


def expire_leases(database: Database, settings: Settings) -> int:
    return _move_due(
        database, settings, state=State.in_progress, due=col(Claim.lease_expires_at), action=Action.expire_lease
    )


def due_rechecks(database: Database, settings: Settings) -> int:
    return _move_due(
        database, settings, state=State.published, due=col(Claim.verdict_recheck_at), action=Action.recheck
    )


def run_timers(database: Database, settings: Settings) -> TimerResult:
    """One pass over every timer; safe to call from several workers at once."""
    result = TimerResult(expire_leases(database, settings), due_rechecks(database, settings))
    global _next_sweep
    if time.monotonic() >= _next_sweep:
        _next_sweep = time.monotonic() + SWEEP_SECONDS
        with database.transaction() as session:
            idempotency.purge_expired(session)
    if result.leases_expired or result.rechecks_due:
        log.info("timers: %d leases expired, %d rechecks due", result.leases_expired, result.rechecks_due)
    return result
