"""Claim tables: the claim (with its current verdict and last published verdict), its tags,
reviewers, approvals, corrections log and comments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow

NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)


def _fk(target: str, *, nullable: bool = True, index: bool = False, ondelete: str | None = None) -> Any:
    return sa.Column(sa.Integer, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)


class Claim(SQLModel, table=True):
    __tablename__ = "claims"
    __table_args__ = (
        sa.Index("ix_claims_state_id", "state", "id"),
        # The queue's order, so that queue/next reads one index entry instead of sorting the queue.
        sa.Index("ix_claims_queue_order", "state", "priority_rank", "due_sort", "created_at", "id"),
        sa.Index("ix_claims_assignee_id", "assignee_id", "id"),
        sa.Index("ix_claims_due_at", "due_at"),
        sa.Index("ix_claims_lease_expires_at", "lease_expires_at"),
        sa.Index("ix_claims_verdict_recheck_at", "verdict_recheck_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    claimant: str | None = Field(default=None, sa_column=sa.Column(sa.String(300), nullable=True))
    appearance_url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2048), nullable=True))
    appeared_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    outlet: str | None = Field(default=None, sa_column=sa.Column(sa.String(300), nullable=True))
    context: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    language: str | None = Field(default=None, sa_column=sa.Column(sa.String(35), nullable=True))
    tags: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    priority: str = Field(default="normal", sa_column=sa.Column(sa.String(8), nullable=False))
    # 0 = urgent ... 3 = low, so the queue index sorts ascending.
    priority_rank: int = Field(default=2, sa_column=sa.Column(sa.SmallInteger, nullable=False))
    due_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    # due_at, or NO_DEADLINE when there is none: claims without a deadline sort last in the queue on
    # both databases, through a plain index (SQLite cannot index "NULLS LAST").
    due_sort: datetime = Field(
        default=NO_DEADLINE, sa_column=sa.Column(UTCDateTime, nullable=False, default=NO_DEADLINE)
    )
    public: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    state: str = Field(default="submitted", sa_column=sa.Column(sa.String(16), nullable=False))
    reject_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # {low, high, qualifier, counted, unit, as_of}: the quantity the claim states, when it states one.
    figure: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    # {article_id, start, end}: the span of an intake article the claim was accepted from.
    source: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))

    verdict_rating: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    verdict_summary: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    verdict_confidence: str | None = Field(default=None, sa_column=sa.Column(sa.String(8), nullable=True))
    verdict_recheck_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    verdict_findings: dict[str, str] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    verdict_author_id: int | None = Field(default=None, sa_column=_fk("users.id"))
    verdict_set_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))

    assignee_id: int | None = Field(default=None, sa_column=_fk("users.id"))
    lease_expires_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    review_round: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))

    published_verdict: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    published_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    first_published_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))

    version: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False))
    created_by: int | None = Field(default=None, sa_column=_fk("users.id"))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False, index=True))
    updated_by: int | None = Field(default=None, sa_column=_fk("users.id"))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))


class ClaimTag(SQLModel, table=True):
    """One row per (claim, tag): what the tag filter uses; Claim.tags is the same list for reading."""

    __tablename__ = "claim_tags"
    __table_args__ = (sa.Index("ix_claim_tags_tag_claim_id", "tag", "claim_id"),)

    claim_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), primary_key=True))
    tag: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))


class ClaimReviewer(SQLModel, table=True):
    __tablename__ = "claim_reviewers"

    claim_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), primary_key=True))
    user_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), primary_key=True))
    added_by: int | None = Field(default=None, sa_column=_fk("users.id"))
    added_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))


class ClaimApproval(SQLModel, table=True):
    """An editor's approval of one review round; a new submit opens a new round."""

    __tablename__ = "claim_approvals"
    __table_args__ = (sa.UniqueConstraint("claim_id", "review_round", "editor_id"),)

    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(sa_column=_fk("claims.id", nullable=False, index=True))
    review_round: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    editor_id: int = Field(sa_column=_fk("users.id", nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))


class ClaimCorrection(SQLModel, table=True):
    """A published verdict that was reopened: what it said, why it was reopened, and when."""

    __tablename__ = "claim_corrections"

    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(sa_column=_fk("claims.id", nullable=False, index=True))
    previous_verdict: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    reopened_by: int | None = Field(default=None, sa_column=_fk("users.id"))
    reopened_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
    republished_verdict: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    republished_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))


class Comment(SQLModel, table=True):
    __tablename__ = "comments"
    __table_args__ = (sa.Index("ix_comments_claim_id_id", "claim_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(sa_column=_fk("claims.id", nullable=False))
    author_id: int | None = Field(default=None, sa_column=_fk("users.id"))
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    mentions: list[int] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
