"""Webhook endpoints and their delivery log: what the admin API does, plus the pieces the dispatcher
shares with it (rendering a delivery, disabling an endpoint).

Services only flush; the caller's transaction commits. Endpoint changes are audit events on the
``webhook:{id}`` chain (not announced to receivers); an endpoint disabled by the worker is announced as
``webhook.endpoint_disabled`` like any other event.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.audit import service as audit
from app.clock import clock
from app.config import Settings
from app.errors import Conflict, NotFound
from app.webhooks import signing
from app.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.webhooks.ssrf import validate_target_url

ROTATION_OVERLAP = timedelta(hours=24)
PING_EVENT = "webhook.ping"
DISABLED_EVENT = "webhook.endpoint_disabled"


def subject(endpoint_id: int | None) -> str:
    return f"webhook:{endpoint_id}"


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _audit_url(url: str) -> str:
    """The target as the audit trail keeps it: scheme, host and port, and a fingerprint of the rest.
    Slack, Discord and Teams hooks carry their credential in the path (others in the query or
    user info), and the trail can never be erased."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/... (sha256 {hashlib.sha256(url.encode()).hexdigest()[:16]})"


def _describe(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit trail keeps about an endpoint (never its secrets)."""
    return {
        "url": _audit_url(endpoint.url),
        "events": list(endpoint.events),
        "format": endpoint.format,
        "enabled": endpoint.enabled,
        "description": endpoint.description,
    }


# --------------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------------


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.")
    return endpoint


def lock_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint, row-locked on PostgreSQL (FOR NO KEY UPDATE, so deliveries can still be added)."""
    lock: Any = {"key_share": True} if _is_postgres(session) else False
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=lock, populate_existing=True)
    if endpoint is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.")
    return endpoint


def list_endpoints(session: Session, *, after_id: int | None, limit: int) -> list[WebhookEndpoint]:
    stmt = sa.select(WebhookEndpoint).order_by(col(WebhookEndpoint.id)).limit(limit + 1)
    if after_id is not None:
        stmt = stmt.where(col(WebhookEndpoint.id) > after_id)
    return list(session.execute(stmt).scalars())


def create_endpoint(
    session: Session,
    *,
    actor: audit.Actor,
    settings: Settings,
    url: str,
    events: Sequence[str],
    description: str = "",
    enabled: bool = True,
    format: str = "standard",
) -> WebhookEndpoint:
    now = clock.now()
    endpoint = WebhookEndpoint(
        url=validate_target_url(url, settings),
        events=list(events),
        description=description,
        enabled=enabled,
        format=format,
        secret=signing.new_secret(),
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
        disabled_at=None if enabled else now,
        disabled_reason=None if enabled else "created disabled",
    )
    session.add(endpoint)
    session.flush()
    audit.record(
        session,
        type_="webhook.endpoint_created",
        actor=actor,
        subject=subject(endpoint.id),
        data=_describe(endpoint),
        emit=False,
        at=now,
    )
    return endpoint


def update_endpoint(
    session: Session,
    *,
    actor: audit.Actor,
    settings: Settings,
    endpoint_id: int,
    changes: Mapping[str, Any],
) -> WebhookEndpoint:
    """Apply the given fields. Enabling a disabled endpoint clears its failure streak; disabling one
    stops its pending deliveries (``recover`` brings them back after re-enabling)."""
    endpoint = lock_endpoint(session, endpoint_id)
    now = clock.now()
    changed: dict[str, Any] = {}
    if "url" in changes and changes["url"] is not None:
        url = validate_target_url(changes["url"], settings)
        if url != endpoint.url:
            endpoint.url = url
            changed["url"] = _audit_url(url)
    for field in ("events", "description", "format"):
        value = changes.get(field)
        if value is not None and value != getattr(endpoint, field):
            setattr(endpoint, field, list(value) if field == "events" else value)
            changed[field] = value
    enabled = changes.get("enabled")
    if enabled is not None and enabled != endpoint.enabled:
        changed["enabled"] = enabled
        endpoint.enabled = enabled
        if enabled:
            endpoint.disabled_at = None
            endpoint.disabled_reason = None
            endpoint.failing_since = None
        else:
            endpoint.disabled_at = now
            endpoint.disabled_reason = "disabled by an admin"
            stop_pending(session, endpoint_id, now=now, reason="endpoint disabled by an admin")
    if changed:
        endpoint.updated_at = now
        session.flush()
        audit.record(
            session,
            type_="webhook.endpoint_updated",
            actor=actor,
            subject=subject(endpoint.id),
            data={"changes": changed},
            emit=False,
            at=now,
        )
    return endpoint


def delete_endpoint(session: Session, *, actor: audit.Actor, endpoint_id: int) -> None:
    """Delete the endpoint with its whole delivery log (the database cascades); the audit trail keeps
    what the endpoint was."""
    endpoint = lock_endpoint(session, endpoint_id)
    description = _describe(endpoint)
    session.execute(sa.delete(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id))
    session.expunge(endpoint)
    audit.record(
        session,
        type_="webhook.endpoint_deleted",
        actor=actor,
        subject=subject(endpoint_id),
        data=description,
        emit=False,
    )


def rotate_secret(session: Session, *, actor: audit.Actor, endpoint_id: int) -> WebhookEndpoint:
    """A new signing secret; the current one keeps signing alongside it for 24 hours. Rotating again
    inside that window drops the oldest secret at once (only two ever sign)."""
    endpoint = lock_endpoint(session, endpoint_id)
    now = clock.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = signing.new_secret()
    endpoint.updated_at = now
    session.flush()
    audit.record(
        session,
        type_="webhook.secret_rotated",
        actor=actor,
        subject=subject(endpoint.id),
        data={"previous_secret_expires_at": endpoint.previous_secret_expires_at.isoformat()},
        emit=False,
        at=now,
    )
    return endpoint


class _Signer(Protocol):
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


def signing_secrets(endpoint: _Signer, now: datetime) -> list[str]:
    """The secrets that sign a delivery made at ``now``: the current one, plus the previous one while
    its rotation overlap lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def stop_pending(session: Session, endpoint_id: int, *, now: datetime, reason: str) -> int:
    """Fail the endpoint's pending deliveries that no worker is sending right now. Those in flight
    are settled when their result comes in (they see the endpoint is disabled)."""
    result = session.execute(
        sa.update(WebhookDelivery)
        .where(
            col(WebhookDelivery.endpoint_id) == endpoint_id,
            col(WebhookDelivery.state) == PENDING,
            sa.or_(col(WebhookDelivery.leased_until).is_(None), col(WebhookDelivery.leased_until) <= now),
        )
        .values(
            state=FAILED,
            next_attempt_at=None,
            leased_until=None,
            lease_token=None,
            finished_at=now,
            last_error=reason,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def disable_endpoint(session: Session, endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> bool:
    """Disable a (locked) endpoint on the worker's behalf and announce it. False if it already was."""
    if not endpoint.enabled:
        return False
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason[:300]
    endpoint.updated_at = now
    session.flush()
    assert endpoint.id is not None
    stop_pending(session, endpoint.id, now=now, reason=f"endpoint disabled: {reason}"[:500])
    data = {
        "endpoint_id": endpoint.id,
        # Only the host: the rest of a URL can be a credential (Slack's are), and this event goes out
        # to other receivers.
        "host": httpx.URL(endpoint.url).host,
        "description": endpoint.description,
        "reason": reason,
        "disabled_at": signing.rfc3339_utc(now),
        "failing_since": signing.rfc3339_utc(endpoint.failing_since) if endpoint.failing_since else None,
    }
    audit.record(
        session, type_=DISABLED_EVENT, actor=audit.Actor.system(), subject=subject(endpoint.id), data=data, at=now
    )
    return True


# --------------------------------------------------------------------------------------------------
# Rendering a delivery
# --------------------------------------------------------------------------------------------------


def event_data(settings: Settings, claim_id: int | None, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data`` member of a delivery: the outbox payload, plus links for claim events."""
    data = dict(payload)
    if claim_id is not None:
        base = settings.public_base_url.rstrip("/")
        data["links"] = {"api": f"{base}/api/v1/claims/{claim_id}"}
    return data


def render_body(fmt: str, event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> str:
    if fmt == "slack":
        claim = data.get("claim")
        if isinstance(claim, Mapping):
            # The Slack renderer wants the claim itself, with the links beside it.
            shown: Mapping[str, Any] = {**claim, "links": data.get("links") or {}}
        else:
            shown = data
        body = signing.render_slack_body(event_type, shown)
    else:
        body = signing.render_standard_body(event_type, occurred_at, data)
    # Both renderers produce pure ASCII JSON, so text storage gives back exactly these bytes.
    return body.decode("ascii")


def new_msg_id() -> str:
    return "msg_" + uuid.uuid4().hex


def delivery_row(
    *,
    endpoint_id: int,
    fmt: str,
    event_type: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
    outbox_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Column values for a new pending delivery (for bulk inserts)."""
    return {
        "msg_id": new_msg_id(),
        "endpoint_id": endpoint_id,
        "outbox_id": outbox_id,
        "event_type": event_type,
        "body": render_body(fmt, event_type, occurred_at, data),
        "state": PENDING,
        "attempts": 0,
        "round_start": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# --------------------------------------------------------------------------------------------------
# Deliveries: the log, ping, redeliver and recover
# --------------------------------------------------------------------------------------------------


def _require_enabled(endpoint: WebhookEndpoint, what: str) -> None:
    if not endpoint.enabled:
        raise Conflict(
            f"The endpoint is disabled; enable it (PATCH enabled=true) before asking for {what}.",
            disabled_reason=endpoint.disabled_reason,
        )


def ping(session: Session, *, settings: Settings, endpoint_id: int) -> WebhookDelivery:
    """Queue a ``webhook.ping`` for this endpoint alone, whatever it subscribes to."""
    endpoint = get_endpoint(session, endpoint_id)
    _require_enabled(endpoint, "a ping")
    now = clock.now()
    data = {"endpoint_id": endpoint_id, "message": "A test event from Claimdesk."}
    row = delivery_row(
        endpoint_id=endpoint_id,
        fmt=endpoint.format,
        event_type=PING_EVENT,
        occurred_at=now,
        data=data,
        outbox_id=None,
        now=now,
    )
    delivery = WebhookDelivery(**row)
    session.add(delivery)
    session.flush()
    return delivery


def list_deliveries(
    session: Session,
    *,
    endpoint_id: int,
    before_id: int | None,
    limit: int,
    state: str | None = None,
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """Newest first, each with its attempts (oldest first). Returns up to ``limit + 1`` rows."""
    get_endpoint(session, endpoint_id)
    stmt = (
        sa.select(WebhookDelivery)
        .where(col(WebhookDelivery.endpoint_id) == endpoint_id)
        .order_by(col(WebhookDelivery.id).desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        stmt = stmt.where(col(WebhookDelivery.id) < before_id)
    if state is not None:
        stmt = stmt.where(col(WebhookDelivery.state) == state)
    deliveries = list(session.execute(stmt).scalars())
    attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries if d.id is not None}
    if attempts:
        rows = session.execute(
            sa.select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(list(attempts)))
            .order_by(col(WebhookAttempt.delivery_id), col(WebhookAttempt.number))
        ).scalars()
        for attempt in rows:
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts.get(d.id or 0, [])) for d in deliveries]


def attempts_of(session: Session, delivery_id: int) -> list[WebhookAttempt]:
    return list(
        session.execute(
            sa.select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id) == delivery_id)
            .order_by(col(WebhookAttempt.number))
        ).scalars()
    )


def _requeue_values(now: datetime) -> dict[str, Any]:
    return {
        "state": PENDING,
        "next_attempt_at": now,
        "round_start": WebhookDelivery.attempts,
        "finished_at": None,
    }


def redeliver(session: Session, *, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again with the same webhook-id and body, with a fresh retry schedule."""
    endpoint = get_endpoint(session, endpoint_id)
    lock: Any = {"key_share": True} if _is_postgres(session) else False
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=lock, populate_existing=True)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound(f"No delivery with id {delivery_id} for webhook endpoint {endpoint_id}.")
    _require_enabled(endpoint, "a redelivery")
    now = clock.now()
    if delivery.state == PENDING and delivery.leased_until is not None and delivery.leased_until > now:
        raise Conflict("The delivery is being sent right now; look at its log again in a moment.")
    session.execute(
        sa.update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == delivery_id)
        .values(**_requeue_values(now))
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.refresh(delivery)
    return delivery


def recover(session: Session, *, endpoint_id: int, since: datetime) -> int:
    """Re-queue every failed delivery of the endpoint created at or after ``since``."""
    endpoint = lock_endpoint(session, endpoint_id)
    _require_enabled(endpoint, "a recovery")
    result = session.execute(
        sa.update(WebhookDelivery)
        .where(
            col(WebhookDelivery.endpoint_id) == endpoint_id,
            col(WebhookDelivery.state) == FAILED,
            col(WebhookDelivery.created_at) >= since,
        )
        .values(**_requeue_values(clock.now()))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def delivery_states() -> tuple[str, ...]:
    return (PENDING, DELIVERED, FAILED)
