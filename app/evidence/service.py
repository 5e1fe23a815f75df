"""Evidence rows: adding (links, notes, stored files), retracting, purging, reading.

Append-only: nothing is edited except the retraction and purge marks. Adding is open to checkers
and above on claims still being worked, and to a contributor on a claim they submitted while it
is still submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.audit.models import IdempotencyRecord
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims.models import Claim
from app.claims.states import State
from app.clock import clock
from app.config import Settings
from app.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, Unprocessable
from app.evidence.models import Evidence
from app.evidence.schemas import EvidenceIn, EvidencePublic
from app.evidence.storage import BlobStore

CLOSED_STATES = (State.published.value, State.rejected.value)


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    media_type: str
    filename: str


def check_role_to_add(principal: Principal) -> None:
    if not principal.has(Role.contributor):
        raise Forbidden("Adding evidence needs the contributor role or above.")


def check_may_add(claim: Claim, principal: Principal) -> None:
    """State, then object rule (the role was checked before the claim was looked up)."""
    if claim.state in CLOSED_STATES:
        raise Conflict(
            f"The claim is {claim.state}: evidence is added while it is being worked. Reopen it first.",
            state=claim.state,
        )
    if not principal.has(Role.checker) and (claim.created_by != principal.user_id or claim.state != State.submitted):
        raise Forbidden("Contributors add evidence only to claims they submitted, while still submitted.")


def add_evidence(
    session: Session,
    *,
    principal: Principal,
    claim_id: int,
    data: EvidenceIn,
    settings: Settings,
    stored: StoredFile | None = None,
    store: BlobStore | None = None,
) -> Evidence:
    """Add a note, a link or (with ``stored`` and the ``store`` holding its bytes) a file."""
    check_role_to_add(principal)
    claim = claims_service.lock_claim(session, claim_id)
    check_may_add(claim, principal)
    if stored is not None:
        if store is None:
            raise TypeError("add_evidence needs the blob store to record a file")
        _confirm_bytes(session, store, stored.sha256)
    if stored is None and data.kind == "link" and not data.url:
        raise Unprocessable("A link needs a url.", errors=[{"loc": ["body", "url"], "msg": "required"}])
    if stored is None and data.kind == "note" and not data.note:
        raise Unprocessable("A note needs its text in note.", errors=[{"loc": ["body", "note"], "msg": "required"}])
    if data.kind == "note" and (data.url or data.archived_url):
        raise Unprocessable("A note has no url; add a link instead.", errors=[{"loc": ["body", "url"]}])
    now = clock.now()
    row = Evidence(
        claim_id=claim_id,
        kind="file" if stored else data.kind,
        stance=data.stance.value,
        dimension=data.dimension.value if data.dimension else None,
        visibility=data.visibility.value,
        note=data.note,
        url=data.url,
        archived_url=data.archived_url,
        accessed_at=data.accessed_at,
        sha256=stored.sha256 if stored else None,
        size=stored.size if stored else None,
        media_type=stored.media_type if stored else None,
        filename=stored.filename if stored else None,
        added_by=principal.user_id,
        added_at=now,
    )
    session.add(row)
    if claim.state == State.in_progress and claim.assignee_id == principal.user_id:
        claim.lease_expires_at = now + timedelta(seconds=settings.lease_seconds)
    session.flush()
    claims_service.emit_claim_event(
        session,
        claim,
        "evidence.added",
        principal.actor,
        {
            "evidence_id": row.id,
            "kind": row.kind,
            "stance": row.stance,
            "dimension": row.dimension,
            "visibility": row.visibility,
            "sha256": row.sha256,
            "size": row.size,
            "media_type": row.media_type,
            # No url, note or filename here: the timeline and webhooks are not erased by a purge.
        },
        at=now,
    )
    return row


def get_evidence(session: Session, evidence_id: int) -> Evidence:
    row = session.get(Evidence, evidence_id)
    if row is None:
        raise NotFound(f"No evidence with id {evidence_id}.")
    return row


def _lock_evidence(session: Session, evidence_id: int) -> Evidence:
    postgres = session.get_bind().dialect.name == "postgresql"
    row = session.get(Evidence, evidence_id, with_for_update=postgres, populate_existing=True)
    if row is None:
        raise NotFound(f"No evidence with id {evidence_id}.")
    return row


def retract_evidence(session: Session, *, principal: Principal, evidence_id: int, reason: str) -> Evidence:
    if not principal.has(Role.contributor):
        raise Forbidden("Retracting evidence needs the contributor role or above.")
    row = _lock_evidence(session, evidence_id)
    if row.purged_at is not None:
        raise Conflict("This evidence was purged; there is nothing left to retract.")
    if row.retracted_at is not None:
        raise Conflict("This evidence is already retracted.", retracted_at=row.retracted_at.isoformat())
    if row.added_by != principal.user_id and not principal.has(Role.editor):
        raise Forbidden("Only the evidence's author or an editor may retract it.")
    now = clock.now()
    row.retracted_at = now
    row.retracted_by = principal.user_id
    row.retract_reason = reason
    session.flush()
    claim = claims_service.get_claim(session, row.claim_id)
    claims_service.emit_claim_event(
        session,
        claim,
        "evidence.retracted",
        principal.actor,
        {"evidence_id": row.id, "reason": reason},
        at=now,
    )
    return row


def purge_evidence(session: Session, *, principal: Principal, evidence_id: int, reason: str) -> Evidence:
    """Destroy the note and identifying fields, keep a tombstone; the caller deletes the bytes after
    commit when no other live row shares them."""
    if not principal.has(Role.admin):
        raise Forbidden("Purging evidence is for admins only.")
    row = _lock_evidence(session, evidence_id)
    if row.purged_at is not None:
        raise Conflict("This evidence is already purged.", purged_at=row.purged_at.isoformat())
    now = clock.now()
    row.note = None
    row.url = None
    row.archived_url = None
    row.filename = None
    row.purged_at = now
    row.purged_by = principal.user_id
    row.purge_reason = reason
    # A stored first response to an Idempotency-Key retry holds the note and url too.
    session.execute(sa.delete(IdempotencyRecord).where(col(IdempotencyRecord.location) == f"/api/v1/evidence/{row.id}"))
    session.flush()
    claim = claims_service.get_claim(session, row.claim_id)
    claims_service.emit_claim_event(
        session,
        claim,
        "evidence.purged",
        principal.actor,
        {"evidence_id": row.id, "sha256": row.sha256, "size": row.size, "reason": reason},
        at=now,
    )
    return row


def _guard_bytes(session: Session, sha256: str) -> None:
    """Serialise every decision about one file's bytes: a new row pointing at them against their
    deletion. On SQLite each write transaction already holds the database's only write lock; on
    PostgreSQL a transaction-scoped advisory lock on the hash does it across processes."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('blob'), hashtext(:s))"), {"s": sha256})


def _confirm_bytes(session: Session, store: BlobStore, sha256: str) -> None:
    # An upload of bytes already stored skips writing them; a purge of the last row that shared them
    # may have deleted them since. Under the guard, nothing can delete them between here and commit.
    _guard_bytes(session, sha256)
    if not store.exists(sha256):
        raise ServiceUnavailable(
            "The file's bytes were removed by a purge while it was arriving; nothing was recorded. Send it again.",
            headers={"Retry-After": "1"},
        )


def delete_unreferenced_bytes(session: Session, store: BlobStore, sha256: str) -> bool:
    """Delete the bytes of ``sha256`` if no live (unpurged) evidence row points at them.

    Run in a write transaction of its own, after the purge's tombstone has committed: the guard
    makes a concurrent upload of the same bytes either land its row first (and the bytes stay) or
    find them gone and refuse (and the client sends them again)."""
    _guard_bytes(session, sha256)
    live = session.execute(
        sa.select(sa.func.count())
        .select_from(Evidence)
        .where(col(Evidence.sha256) == sha256, col(Evidence.purged_at).is_(None))
    ).scalar_one()
    if live:
        return False
    return store.exists(sha256) and store.delete(sha256)


def list_evidence(session: Session, *, claim_id: int, after_id: int | None, limit: int) -> list[Evidence]:
    claims_service.get_claim(session, claim_id)
    stmt = sa.select(Evidence).where(col(Evidence.claim_id) == claim_id).order_by(col(Evidence.id)).limit(limit + 1)
    if after_id is not None:
        stmt = stmt.where(col(Evidence.id) > after_id)
    return list(session.execute(stmt).scalars())


def present(row: Evidence) -> EvidencePublic:
    assert row.id is not None
    return EvidencePublic(
        id=row.id,
        claim_id=row.claim_id,
        kind=row.kind,
        stance=row.stance,
        dimension=row.dimension,
        visibility=row.visibility,
        note=row.note,
        url=row.url,
        archived_url=row.archived_url,
        accessed_at=row.accessed_at,
        sha256=row.sha256,
        size=row.size,
        media_type=row.media_type,
        filename=row.filename,
        added_by=row.added_by,
        added_at=row.added_at,
        retracted=row.retracted_at is not None,
        retracted_at=row.retracted_at,
        retracted_by=row.retracted_by,
        retract_reason=row.retract_reason,
        purged=row.purged_at is not None,
        purged_at=row.purged_at,
        purged_by=row.purged_by,
        purge_reason=row.purge_reason,
    )
