from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Evidence(SQLModel, table=True):
    """Append-only: rows are never edited except to mark them retracted or purged."""

    __tablename__ = "evidence"
    __table_args__ = (
        sa.Index("ix_evidence_claim_id_id", "claim_id", "id"),
        sa.Index("ix_evidence_sha256", "sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    stance: str = Field(default="context", sa_column=sa.Column(sa.String(16), nullable=False))
    dimension: str | None = Field(default=None, sa_column=sa.Column(sa.String(16), nullable=True))
    visibility: str = Field(default="internal", sa_column=sa.Column(sa.String(16), nullable=False))
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2048), nullable=True))
    archived_url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2048), nullable=True))
    accessed_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    size: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    media_type: str | None = Field(default=None, sa_column=sa.Column(sa.String(128), nullable=True))
    filename: str | None = Field(default=None, sa_column=sa.Column(sa.String(255), nullable=True))
    added_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    added_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
    retracted_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    retracted_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    retract_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    purged_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    purged_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    purge_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
