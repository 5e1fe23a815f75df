"""Webhook endpoints and their delivery log (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator

from app.auth.deps import Admin
from app.claims.service import parse_id
from app.clock import clock
from app.db import CommitOnReturn, ReadSessionDep, WriteSessionDep
from app.deps import SettingsDep
from app.errors import problem_response
from app.pagination import CursorQuery, LimitQuery, finish_page, int_position
from app.validation import StrictInput
from app.webhooks import service
from app.webhooks.models import ALL_EVENTS, EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint

router = APIRouter(prefix="/api/v1", tags=["webhooks"], route_class=CommitOnReturn)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_response("No valid API key"),
    403: problem_response("Admins only"),
    404: problem_response("Unknown endpoint or delivery"),
    422: problem_response("Invalid input (an unknown event, a refused URL...)"),
}
STATE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: problem_response("The endpoint is disabled, or the delivery is being sent right now"),
}

Format = Literal["standard", "slack"]
DeliveryState = Literal["pending", "delivered", "failed"]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
EVENTS_HELP = 'Event names, or `["*"]` for every event: ' + ", ".join(EVENT_TYPES) + "."


def _check_events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    names = list(dict.fromkeys(value))  # drop repeats, keep order
    if not names:
        raise ValueError("subscribe to at least one event, or to all of them with ['*']")
    if ALL_EVENTS in names and len(names) > 1:
        raise ValueError("'*' already means every event; send it alone")
    unknown = [n for n in names if n != ALL_EVENTS and n not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event(s): {', '.join(unknown)}")
    return names


class Strict(StrictInput):
    pass


class WebhookIn(Strict):
    url: Url = Field(examples=["https://hooks.example.org/claimdesk"])
    events: list[str] = Field(max_length=64, description=EVENTS_HELP, examples=[["claim.published"]])
    description: Description = ""
    enabled: bool = True
    format: Format = Field(default="standard", description="`slack` posts a Slack incoming-webhook message.")

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        return _check_events(value) or []


class WebhookPatch(Strict):
    url: Url | None = None
    events: list[str] | None = Field(default=None, max_length=64, description=EVENTS_HELP)
    description: Description | None = None
    enabled: bool | None = Field(
        default=None, description="true re-enables a disabled endpoint and clears its failure streak."
    )
    format: Format | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        return _check_events(value)


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    format: str
    enabled: bool
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = Field(
        default=None, description="When the current unbroken run of failed attempts began."
    )
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="Until then the previous secret signs alongside the current one."
    )
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookPublic):
    secret: str = Field(description="`whsec_...`: shown here once; keep it to verify signatures.")


class WebhookList(BaseModel):
    items: list[WebhookPublic]
    next_cursor: str | None = None


class AttemptPublic(BaseModel):
    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None = Field(description="success, failure, gone, interrupted, or null while on the wire.")
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response_excerpt: str | None


class DeliveryPublic(BaseModel):
    id: int
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt and redelivery.")
    event_type: str
    state: DeliveryState
    in_flight: bool
    attempt_count: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next.")
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[AttemptPublic]


class DeliveryList(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None = None


class RecoverIn(Strict):
    since: AwareDatetime = Field(description="Re-send every failed delivery created at or after this time.")


class RecoverOut(BaseModel):
    requeued: int


def _public(endpoint: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic.model_validate(endpoint, from_attributes=True)


def _with_secret(endpoint: WebhookEndpoint) -> WebhookWithSecret:
    return WebhookWithSecret(**_public(endpoint).model_dump(), secret=endpoint.secret)


def _delivery(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryPublic:
    assert delivery.id is not None
    now = clock.now()
    in_flight = delivery.state == "pending" and delivery.leased_until is not None and delivery.leased_until > now
    return DeliveryPublic(
        id=delivery.id,
        webhook_id=delivery.msg_id,
        event_type=delivery.event_type,
        state=delivery.state,
        in_flight=in_flight,
        attempt_count=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
        attempts=[AttemptPublic.model_validate(a, from_attributes=True) for a in attempts],
    )


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    responses=ERRORS,
    summary="Register a webhook endpoint",
    description=(
        "The response carries the signing secret once. Private, loopback and other non-public targets "
        "are refused (422) unless inside CLAIMDESK_WEBHOOK_ALLOWED_CIDRS."
    ),
)
def create_webhook(
    body: WebhookIn, principal: Admin, session: WriteSessionDep, settings: SettingsDep, response: Response
) -> WebhookWithSecret:
    endpoint = service.create_endpoint(
        session,
        actor=principal.actor,
        settings=settings,
        url=body.url,
        events=body.events,
        description=body.description,
        enabled=body.enabled,
        format=body.format,
    )
    response.headers["Location"] = f"/api/v1/webhooks/{endpoint.id}"
    response.headers["Cache-Control"] = "no-store"  # the signing secret is in this answer
    return _with_secret(endpoint)


@router.get("/webhooks", response_model=WebhookList, responses=ERRORS, summary="List webhook endpoints")
def list_webhooks(
    request: Request,
    response: Response,
    principal: Admin,
    session: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> WebhookList:
    rows = service.list_endpoints(session, after_id=int_position(cursor, "webhooks"), limit=limit)
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="webhooks")
    return WebhookList(items=[_public(e) for e in rows], next_cursor=next_cursor)


@router.get("/webhooks/{webhook_id}", response_model=WebhookPublic, responses=ERRORS, summary="Read a webhook endpoint")
def get_webhook(webhook_id: str, principal: Admin, session: ReadSessionDep) -> WebhookPublic:
    return _public(service.get_endpoint(session, parse_id(webhook_id, "webhook endpoint")))


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookPublic,
    responses=ERRORS,
    summary="Change a webhook endpoint",
    description=(
        "`enabled: true` re-enables a disabled endpoint and clears its failure streak (failed deliveries "
        "stay failed: use recover). `enabled: false` stops its pending deliveries."
    ),
)
def update_webhook(
    webhook_id: str, body: WebhookPatch, principal: Admin, session: WriteSessionDep, settings: SettingsDep
) -> WebhookPublic:
    endpoint = service.update_endpoint(
        session,
        actor=principal.actor,
        settings=settings,
        endpoint_id=parse_id(webhook_id, "webhook endpoint"),
        changes=body.model_dump(exclude_unset=True),
    )
    return _public(endpoint)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
    summary="Delete a webhook endpoint and its delivery log",
)
def delete_webhook(webhook_id: str, principal: Admin, session: WriteSessionDep) -> Response:
    service.delete_endpoint(session, actor=principal.actor, endpoint_id=parse_id(webhook_id, "webhook endpoint"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    responses=ERRORS,
    summary="Issue a new signing secret",
    description="The new secret is shown once. For 24 hours deliveries carry signatures by both secrets.",
)
def rotate_webhook_secret(
    webhook_id: str, principal: Admin, session: WriteSessionDep, response: Response
) -> WebhookWithSecret:
    response.headers["Cache-Control"] = "no-store"  # the new signing secret is in this answer
    endpoint = service.rotate_secret(
        session, actor=principal.actor, endpoint_id=parse_id(webhook_id, "webhook endpoint")
    )
    return _with_secret(endpoint)


@router.post(
    "/webhooks/{webhook_id}/ping",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryPublic,
    responses=STATE_ERRORS,
    summary="Send a webhook.ping to this endpoint",
    description="Queued like any delivery; follow it in the delivery log.",
)
def ping_webhook(webhook_id: str, principal: Admin, session: WriteSessionDep, settings: SettingsDep) -> DeliveryPublic:
    delivery = service.ping(session, settings=settings, endpoint_id=parse_id(webhook_id, "webhook endpoint"))
    return _delivery(delivery, [])


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses={**ERRORS, 400: problem_response("Bad cursor")},
    summary="The endpoint's delivery log",
    description="Newest first, each delivery with its attempts (status, latency, error, response excerpt).",
)
def list_deliveries(
    request: Request,
    response: Response,
    webhook_id: str,
    principal: Admin,
    session: ReadSessionDep,
    state: Annotated[DeliveryState | None, Query(description="Only deliveries in this state.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> DeliveryList:
    rows = service.list_deliveries(
        session,
        endpoint_id=parse_id(webhook_id, "webhook endpoint"),
        before_id=int_position(cursor, "deliveries"),
        limit=limit,
        state=state,
    )
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="deliveries", position=lambda r: r[0].id)
    return DeliveryList(items=[_delivery(d, a) for d, a in rows], next_cursor=next_cursor)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryPublic,
    responses=STATE_ERRORS,
    summary="Send a delivery again",
    description="Same webhook-id and body, a fresh retry schedule.",
)
def redeliver(webhook_id: str, delivery_id: str, principal: Admin, session: WriteSessionDep) -> DeliveryPublic:
    delivery = service.redeliver(
        session,
        endpoint_id=parse_id(webhook_id, "webhook endpoint"),
        delivery_id=parse_id(delivery_id, "delivery"),
    )
    assert delivery.id is not None
    return _delivery(delivery, service.attempts_of(session, delivery.id))


@router.post(
    "/webhooks/{webhook_id}/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecoverOut,
    responses=STATE_ERRORS,
    summary="Re-send every failed delivery since a time",
    description="Each keeps its webhook-id and gets a fresh retry schedule.",
)
def recover(webhook_id: str, body: RecoverIn, principal: Admin, session: WriteSessionDep) -> RecoverOut:
    count = service.recover(session, endpoint_id=parse_id(webhook_id, "webhook endpoint"), since=body.since)
    return RecoverOut(requeued=count)
