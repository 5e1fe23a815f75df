"""Webhook tables: endpoints, one delivery per (event, endpoint), and one row per attempt.

A delivery is a small state machine: ``pending`` until an attempt succeeds (``delivered``) or the
retry schedule runs out or the endpoint is disabled (``failed``). While a worker is sending it, the
delivery carries a lease (``leased_until`` plus ``lease_token``): other workers leave it alone until
the lease runs out, which is how a crashed worker's deliveries come back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow

# Every event a webhook endpoint can subscribe to; ``["*"]`` subscribes to all of them.
EVENT_TYPES: tuple[str, ...] = (
    "claim.created",
    "claim.updated",
    "claim.state_changed",
    "claim.assigned",
    "claim.unassigned",
    "claim.lease_expired",
    "claim.verdict_set",
    "claim.approval_added",
    "claim.published",
    "claim.reopened",
    "claim.recheck_due",
    "claim.comment_added",
    "claim.duplicate_suspected",
    "evidence.added",
    "evidence.retracted",
    "evidence.purged",
    "webhook.endpoint_disabled",
    "webhook.ping",
)
ALL_EVENTS = "*"

FORMATS: tuple[str, ...] = ("standard", "slack")

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
DELIVERY_STATES: tuple[str, ...] = (PENDING, DELIVERED, FAILED)


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=sa.Column(sa.String(2048), nullable=False))
    description: str = Field(default="", sa_column=sa.Column(sa.String(500), nullable=False))
    events: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    format: str = Field(default="standard", sa_column=sa.Column(sa.String(16), nullable=False))
    enabled: bool = Field(default=True, sa_column=sa.Column(sa.Boolean, nullable=False))
    # Kept as issued: the worker needs the raw secret to sign. Anyone who can read this table can
    # forge deliveries, so database access must be treated like access to the secrets themselves.
    secret: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    previous_secret: str | None = Field(default=None, sa_column=sa.Column(sa.String(128), nullable=True))
    previous_secret_expires_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    # Start of the current unbroken run of failed attempts; None while the endpoint is healthy.
    failing_since: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    disabled_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    disabled_reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(300), nullable=True))
    created_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint. ``body`` is rendered once, so every attempt sends the same bytes."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # Claiming: each endpoint's due deliveries, oldest first.
        sa.Index("ix_webhook_deliveries_claim", "endpoint_id", "state", "next_attempt_at"),
        # The delivery log, newest first.
        sa.Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        # The backlog metrics (count and oldest of the pending ones).
        sa.Index("ix_webhook_deliveries_state_created_at", "state", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The webhook-id header: the same on every attempt and every redelivery of this row.
    msg_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    endpoint_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False)
    )
    outbox_id: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    event_type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    state: str = Field(default=PENDING, sa_column=sa.Column(sa.String(16), nullable=False))
    # Attempts started so far (numbers are handed out when a worker claims the delivery).
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    # ``attempts`` when the current round of retries began (0, or the count at a redeliver/recover),
    # so a re-queued delivery gets the whole retry schedule again.
    round_start: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    next_attempt_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    leased_until: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    lease_token: str | None = Field(default=None, sa_column=sa.Column(sa.String(32), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    # The latest reason it did not succeed: the last attempt's error, or why it was stopped.
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.String(500), nullable=True))


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt. Inserted when the attempt starts; the outcome is filled in when it ends.
    An attempt whose worker died keeps ``outcome`` None until the retry marks it ``interrupted``."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (sa.UniqueConstraint("delivery_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False)
    )
    number: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    started_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    outcome: str | None = Field(default=None, sa_column=sa.Column(sa.String(16), nullable=True))
    status_code: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    latency_ms: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    response_excerpt: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.String(500), nullable=True))


def event_matches(subscribed: list[str] | Any, event_type: str) -> bool:
    return isinstance(subscribed, list) and (ALL_EVENTS in subscribed or event_type in subscribed)
