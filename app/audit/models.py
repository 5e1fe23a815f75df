from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class AuditEvent(SQLModel, table=True):
    """Append-only. Events of one subject ("claim:12", "user:3") form a hash chain by ``seq``."""

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.UniqueConstraint("subject", "seq"),
        sa.Index("ix_audit_events_claim_id_id", "claim_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    seq: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    claim_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), nullable=True)
    )
    type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    actor_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    api_key_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("api_keys.id"), nullable=True)
    )
    request_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class OutboxEvent(SQLModel, table=True):
    """Written in the same transaction as the change it announces; the webhook dispatcher fans each
    row out into deliveries and stamps ``dispatched_at``."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_dispatched_at_id", "dispatched_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("audit_events.id"), nullable=True)
    )
    type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    claim_id: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
    dispatched_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a POST carrying an Idempotency-Key, kept for replay (>= 24 h)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("api_key_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False))
    key: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    fingerprint: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    status_code: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    response: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    location: str | None = Field(default=None, sa_column=sa.Column(sa.String(512), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False, index=True))
