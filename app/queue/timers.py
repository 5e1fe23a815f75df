"""Timers the background worker runs: expired leases return claims to the queue, and due
re-checks of unverified/disputed verdicts bring published claims back for another look.

Each claim moves in its own short transaction through the transition table (system actions), so
one bad row cannot hold up the rest and a crash half-way loses nothing: the next tick finds what
is still due.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from app.claims import service as claims_service
from app.claims.models import Claim
from app.claims.states import Action, State
from app.clock import clock
from app.config import Settings
from app.db import Database

log = logging.getLogger("claimdesk.timers")

BATCH = 200


@dataclass
class TimerResult:
    leases_expired: int = 0
    rechecks_due: int = 0


def _due_ids(database: Database, stmt: sa.Select[Any]) -> list[int]:
    with database.read_session() as session:
        return [cid for (cid,) in session.execute(stmt) if cid is not None]


def expire_leases(database: Database, settings: Settings) -> int:
    now = clock.now()
    ids = _due_ids(
        database,
        sa.select(col(Claim.id))
        .where(
            col(Claim.state) == State.in_progress.value,
            col(Claim.lease_expires_at).is_not(None),
            col(Claim.lease_expires_at) <= now,
        )
        .order_by(col(Claim.lease_expires_at))
        .limit(BATCH),
    )
    done = 0
    for claim_id in ids:
        with database.transaction() as session:
            claim = claims_service.lock_claim(session, claim_id)
            # Re-checked under the lock: the assignee may have renewed it in the meantime.
            if claim.lease_expires_at is None or claim.lease_expires_at > clock.now():
                continue
            if claims_service.system_action(session, claim_id=claim_id, action=Action.expire_lease, settings=settings):
                done += 1
    return done


def due_rechecks(database: Database, settings: Settings) -> int:
    now = clock.now()
    ids = _due_ids(
        database,
        sa.select(col(Claim.id))
        .where(
            col(Claim.state) == State.published.value,
            col(Claim.verdict_recheck_at).is_not(None),
            col(Claim.verdict_recheck_at) <= now,
        )
        .order_by(col(Claim.verdict_recheck_at))
        .limit(BATCH),
    )
    done = 0
    for claim_id in ids:
        with database.transaction() as session:
            claim = claims_service.lock_claim(session, claim_id)
            if claim.verdict_recheck_at is None or claim.verdict_recheck_at > clock.now():
                continue
            if claims_service.system_action(session, claim_id=claim_id, action=Action.recheck, settings=settings):
                done += 1
    return done


def run_timers(database: Database, settings: Settings) -> TimerResult:
    """One pass over every timer; safe to call from several workers at once."""
    result = TimerResult(expire_leases(database, settings), due_rechecks(database, settings))
    if result.leases_expired or result.rechecks_due:
        log.info("timers: %d leases expired, %d rechecks due", result.leases_expired, result.rechecks_due)
    return result
