"""What the public sees: published claims marked public, their public evidence, corrections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.claims import service as claims_service
from app.claims.models import Claim, ClaimCorrection
from app.config import Settings
from app.errors import Conflict, NotFound
from app.evidence.models import Evidence
from app.publishing import claimreview


def corrections_of(session: Session, claim_id: int) -> list[ClaimCorrection]:
    return list(
        session.execute(
            sa.select(ClaimCorrection)
            .where(col(ClaimCorrection.claim_id) == claim_id)
            .order_by(col(ClaimCorrection.id))
        ).scalars()
    )


def claimreview_for(session: Session, *, claim_id: int, settings: Settings) -> dict[str, Any]:
    """For the API (any reader with a key): 409 until the claim has been published once."""
    claim = claims_service.get_claim(session, claim_id)
    if claim.published_verdict is None:
        raise Conflict("This claim has never been published; there is no ClaimReview yet.", state=claim.state)
    return claimreview.build(claim, corrections_of(session, claim_id), settings)


def _public_claims() -> Any:
    # Published once (published_at is set with the first publication and kept through reopenings).
    # Not published_verdict: a JSON column stores None as the JSON text 'null', which IS NOT NULL.
    return sa.and_(col(Claim.public).is_(True), col(Claim.published_at).is_not(None))


def list_public(session: Session, *, before: tuple[str, int] | None, limit: int) -> list[Claim]:
    """Newest publication first, keyset-paged on (published_at, id)."""
    stmt = (
        sa.select(Claim)
        .where(_public_claims())
        .order_by(col(Claim.published_at).desc(), col(Claim.id).desc())
        .limit(limit + 1)
    )
    if before is not None:
        at, cid = datetime.fromisoformat(before[0]), before[1]
        stmt = stmt.where(
            sa.or_(col(Claim.published_at) < at, sa.and_(col(Claim.published_at) == at, col(Claim.id) < cid))
        )
    return list(session.execute(stmt).scalars())


@dataclass
class PublicPage:
    claim: Claim
    evidence: list[Evidence]
    corrections: list[ClaimCorrection]
    review: dict[str, Any]
    under_review: bool


def public_page(session: Session, *, claim_id: int, settings: Settings) -> PublicPage:
    claim = session.get(Claim, claim_id)
    if claim is None or not claim.public or claim.published_verdict is None:
        raise NotFound(f"No published fact-check {claim_id}.")
    conds = [
        col(Evidence.claim_id) == claim_id,
        col(Evidence.visibility) == "public",
        col(Evidence.retracted_at).is_(None),
        col(Evidence.purged_at).is_(None),
    ]
    approved = _approved_evidence(claim)
    if approved is not None:
        conds.append(col(Evidence.id).in_(approved))
    evidence = list(session.execute(sa.select(Evidence).where(*conds).order_by(col(Evidence.id))).scalars())
    corrections = corrections_of(session, claim_id)
    return PublicPage(
        claim=claim,
        evidence=evidence,
        corrections=corrections,
        review=claimreview.build(claim, corrections, settings),
        under_review=claimreview.under_review(claim),
    )


def public_file(session: Session, *, evidence_id: int) -> Evidence:
    """A public, live file of a public fact-check; anything else is 404 (we do not say why)."""
    row = session.get(Evidence, evidence_id)
    if row is None or row.kind != "file" or row.visibility != "public" or row.retracted_at or row.purged_at:
        raise NotFound(f"No public evidence {evidence_id}.")
    claim = session.get(Claim, row.claim_id)
    if claim is None or not claim.public or claim.published_verdict is None:
        raise NotFound(f"No public evidence {evidence_id}.")
    approved = _approved_evidence(claim)
    if approved is not None and row.id not in approved:
        raise NotFound(f"No public evidence {evidence_id}.")
    return row


def _approved_evidence(claim: Claim) -> list[int] | None:
    """The public evidence the last publication showed (None for snapshots from before it was kept)."""
    ids = (claim.published_verdict or {}).get("public_evidence_ids")
    return list(ids) if isinstance(ids, list) else None
