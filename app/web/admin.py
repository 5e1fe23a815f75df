"""Admin pages: users and their API keys, webhook endpoints and their delivery log.

Each action calls what the matching API route calls (``app.auth.service`` for users and keys,
``app.webhooks.service`` for webhooks), after reading the form into the route's own request model
(``UserCreate``, ``UserUpdate``, ``ApiKeyCreate``, ``WebhookIn``, ``WebhookPatch``, ``RecoverIn``),
so the rules live in one place: the last admin cannot step down, an admin cannot revoke their own
last key, webhook targets go through the SSRF guard, and so on.

Secrets (a new API key, a webhook signing secret) are rendered once, in the answer to the POST that
made them: never redirected through a URL, never put in the session cookie, never logged. Passwords
are never echoed back into a form.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.models import ApiKey
from app.auth.roles import Role
from app.auth.schemas import ApiKeyCreate, UserCreate, UserUpdate
from app.claims.service import parse_id
from app.db import get_database
from app.errors import DomainError
from app.web.deps import Admin, DeskUser, PostedForm, settings_of
from app.web.forms import utc_field, validated
from app.web.render import FLASH, DeskRoute, Problem, page, problem_of, see_other
from app.webhooks import service as webhooks_service
from app.webhooks.models import ALL_EVENTS, EVENT_TYPES, FORMATS, WebhookEndpoint
from app.webhooks.router import DeliveryPublic, RecoverIn, WebhookIn, WebhookPatch, _delivery

router = APIRouter(route_class=DeskRoute)

USERS_PAGE = 100
KEYS_PAGE = 200
WEBHOOKS_PAGE = 200
DELIVERIES_PAGE = 50
ROLES = [r.value for r in Role]
DELIVERY_STATES = ("pending", "delivered", "failed")

FLASH.update(
    {
        "user_created": "User created.",
        "role_changed": "Role changed.",
        "deactivated": "Deactivated: their desk sessions and API keys stop working now.",
        "reactivated": "Reactivated.",
        "password_set": "Password set: their desk sessions have ended.",
        "key_revoked": "Key revoked: it stops working now.",
        "webhook_enabled": "Endpoint enabled.",
        "webhook_disabled": "Endpoint disabled: its pending deliveries are stopped.",
        "webhook_saved": "Endpoint saved.",
        "webhook_deleted": "Endpoint deleted, with its delivery log.",
        "pinged": "Ping queued: it appears in the log below.",
        "redelivered": "Queued to be sent again, with the same webhook-id.",
        "recovered": "Failed deliveries since that time are queued again.",
    }
)


def _admin_values(values: dict[str, str]) -> dict[str, str]:
    """What a refused form shows again: everything typed except a password."""
    return {k: v for k, v in values.items() if "password" not in k}


# --- users ---------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    *,
    after: int | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    problem: Problem | None = None,
) -> Response:
    with get_database(request).read_session() as session:
        users = auth_service.list_users(session, after_id=after, limit=USERS_PAGE)
    more = len(users) > USERS_PAGE
    users = users[:USERS_PAGE]
    return page(
        request,
        "admin_users.html",
        title="Admin · Users",
        active="admin",
        tab="users",
        status=status,
        problem=problem,
        users=users,
        next_after=users[-1].id if more and users else None,
        values=values or {"role": "checker"},
        roles=ROLES,
    )


@router.get("/admin")
def admin_page(request: Request, user: Admin, after: str = "") -> Response:
    return _users_page(request, after=parse_id(after, "page") if after else None)


@router.post("/admin/users")
def create_user(request: Request, user: Admin, form: PostedForm) -> Response:
    values = form.values()
    try:
        body = validated(
            UserCreate,
            {
                "email": form.get("email"),
                "name": form.get("name"),
                "role": form.get("role"),
                "password": values.get("password") or None,  # as typed: spaces may belong to it
            },
        )
        with get_database(request).transaction() as session:
            created = auth_service.create_user(
                session,
                actor=user.principal.actor,
                email=body.email,
                name=body.name,
                role=body.role,
                password=body.password,
            )
            created_id = created.id
    except DomainError as exc:
        return _users_page(request, values=_admin_values(values), status=exc.status, problem=problem_of(exc))
    return see_other(f"/desk/admin/users/{created_id}", ok="user_created")


def _user_page(
    request: Request,
    me: DeskUser,
    raw_id: str | int,
    *,
    status: int = 200,
    problem: Problem | None = None,
    problem_at: str = "",
    values: dict[str, str] | None = None,
    new_key: str | None = None,
    new_key_id: int | None = None,
) -> Response:
    user_id = parse_id(raw_id, "user")
    with get_database(request).read_session() as session:
        target = auth_service.get_user(session, user_id)
        keys = auth_service.list_api_keys(session, user_id=user_id, after_id=None, limit=KEYS_PAGE)
    return page(
        request,
        "admin_user.html",
        title=f"Admin · {target.name}",
        active="admin",
        tab="users",
        status=status,
        problem=problem,
        problem_at=problem_at,
        target=target,
        keys=keys[:KEYS_PAGE],
        more_keys=len(keys) > KEYS_PAGE,
        is_me=target.id == me.id,
        roles=ROLES,
        values=values or {},
        new_key=new_key,
        new_key_id=new_key_id,
    )


@router.get("/admin/users/{user_id}")
def user_page(request: Request, user: Admin, user_id: str) -> Response:
    return _user_page(request, user, user_id)


def _update_user(request: Request, me: DeskUser, raw_id: str, fields: dict[str, Any], where: str, ok: str) -> Response:
    """PATCH /users/{id} as a form: the same model, the same service call."""
    user_id = parse_id(raw_id, "user")
    try:
        body = validated(UserUpdate, fields)
        with get_database(request).transaction() as session:
            auth_service.update_user(
                session,
                actor=me.principal.actor,
                user_id=user_id,
                name=body.name,
                role=body.role,
                active=body.active,
                password=body.password,
            )
    except DomainError as exc:
        values = {k: str(v) for k, v in fields.items() if k != "password" and v is not None}
        return _user_page(
            request, me, user_id, status=exc.status, problem=problem_of(exc), problem_at=where, values=values
        )
    if user_id == me.id and (body.role not in (None, Role.admin) or body.active is False):
        return see_other("/desk/", ok=ok)  # I stepped down: the admin pages are no longer mine
    return see_other(f"/desk/admin/users/{user_id}", ok=ok)


@router.post("/admin/users/{user_id}/role")
def change_role(request: Request, user: Admin, form: PostedForm, user_id: str) -> Response:
    return _update_user(request, user, user_id, {"role": form.get("role")}, "role", "role_changed")


@router.post("/admin/users/{user_id}/name")
def rename(request: Request, user: Admin, form: PostedForm, user_id: str) -> Response:
    return _update_user(request, user, user_id, {"name": form.get("name")}, "name", "saved")


@router.post("/admin/users/{user_id}/active")
def set_active(request: Request, user: Admin, form: PostedForm, user_id: str) -> Response:
    active = form.get("active")
    ok = "reactivated" if active == "true" else "deactivated"
    return _update_user(request, user, user_id, {"active": active}, "active", ok)


@router.post("/admin/users/{user_id}/password")
def set_password(request: Request, user: Admin, form: PostedForm, user_id: str) -> Response:
    # Read raw, not stripped: spaces can be part of a password.
    raw = form.values().get("password", "")
    response = _update_user(request, user, user_id, {"password": raw}, "password", "password_set")
    if response.status_code == 303 and parse_id(user_id, "user") == user.id:
        # My own password: this session ended with it, so sign in again with the new one.
        return see_other("/desk/signin?next=%2Fdesk%2Fadmin")
    return response


# --- API keys ------------------------------------------------------------------------------------


@router.post("/admin/users/{user_id}/keys")
def create_key(request: Request, user: Admin, form: PostedForm, user_id: str) -> Response:
    uid = parse_id(user_id, "user")
    values = form.values()
    try:
        body = validated(ApiKeyCreate, {"name": form.get("name"), "expires_at": utc_field(form.optional("expires_at"))})
        with get_database(request).transaction() as session:
            row, raw = auth_service.create_api_key(
                session, actor=user.principal.actor, user_id=uid, name=body.name, expires_at=body.expires_at
            )
            key_id = row.id
    except DomainError as exc:
        return _user_page(
            request, user, uid, status=exc.status, problem=problem_of(exc), problem_at="key", values=values
        )
    # Shown in this answer alone: not redirected, not stored anywhere but as its hash.
    return _user_page(request, user, uid, status=201, new_key=raw, new_key_id=key_id)


@router.post("/admin/keys/{key_id}/revoke")
def revoke_key(request: Request, user: Admin, form: PostedForm, key_id: str) -> Response:
    kid = parse_id(key_id, "API key")
    with get_database(request).read_session() as session:
        owner = session.get(ApiKey, kid)
        owner_id = owner.user_id if owner is not None else None
    try:
        with get_database(request).transaction() as session:
            row = auth_service.revoke_api_key(session, actor=user.principal.actor, key_id=kid)
            owner_id = row.user_id
    except DomainError as exc:
        if owner_id is None:
            raise
        return _user_page(request, user, owner_id, status=exc.status, problem=problem_of(exc), problem_at=f"key-{kid}")
    return see_other(f"/desk/admin/users/{owner_id}", ok="key_revoked")


# --- webhooks ------------------------------------------------------------------------------------


def _webhooks_page(
    request: Request, *, values: dict[str, Any] | None = None, status: int = 200, problem: Problem | None = None
) -> Response:
    with get_database(request).read_session() as session:
        endpoints = webhooks_service.list_endpoints(session, after_id=None, limit=WEBHOOKS_PAGE)
    return page(
        request,
        "admin_webhooks.html",
        title="Admin · Webhooks",
        active="admin",
        tab="webhooks",
        status=status,
        problem=problem,
        endpoints=endpoints[:WEBHOOKS_PAGE],
        more=len(endpoints) > WEBHOOKS_PAGE,
        values=values or {"events": [], "format": "standard"},
        event_types=EVENT_TYPES,
        all_events=ALL_EVENTS,
        formats=FORMATS,
    )


@router.get("/admin/webhooks")
def webhooks_page(request: Request, user: Admin) -> Response:
    return _webhooks_page(request)


def _events(form: PostedForm) -> list[str]:
    return [ALL_EVENTS] if form.get("all_events") == "true" else form.getlist("events")


@router.post("/admin/webhooks")
def create_webhook(request: Request, user: Admin, form: PostedForm) -> Response:
    values: dict[str, Any] = {**form.values(), "events": form.getlist("events")}
    try:
        body = validated(
            WebhookIn,
            {
                "url": form.get("url"),
                "events": _events(form),
                "description": form.get("description"),
                "format": form.get("format") or "standard",
                "enabled": form.get("enabled", "true") == "true",
            },
        )
        with get_database(request).transaction() as session:
            endpoint = webhooks_service.create_endpoint(
                session,
                actor=user.principal.actor,
                settings=settings_of(request),
                url=body.url,
                events=body.events,
                description=body.description,
                enabled=body.enabled,
                format=body.format,
            )
            endpoint_id, secret = endpoint.id, endpoint.secret
    except DomainError as exc:
        return _webhooks_page(request, values=values, status=exc.status, problem=_url_problem(exc))
    assert endpoint_id is not None
    return _webhook_page(request, endpoint_id, status=201, secret=secret, created=True)


def _url_problem(exc: DomainError) -> Problem:
    """The SSRF guard's 422 names no field; the only field it judges is the URL, so mark that one."""
    problem = problem_of(exc)
    if exc.status == 422 and not problem.fields:
        problem.fields.append("url")
    return problem


def _webhook_page(
    request: Request,
    endpoint_id: int,
    *,
    state: str = "",
    before: int | None = None,
    status: int = 200,
    problem: Problem | None = None,
    problem_at: str = "",
    values: dict[str, Any] | None = None,
    secret: str | None = None,
    created: bool = False,
    requeued: int | None = None,
) -> Response:
    with get_database(request).read_session() as session:
        endpoint = webhooks_service.get_endpoint(session, endpoint_id)
        rows = webhooks_service.list_deliveries(
            session,
            endpoint_id=endpoint_id,
            before_id=before,
            limit=DELIVERIES_PAGE,
            state=state if state in DELIVERY_STATES else None,
        )
        deliveries: list[DeliveryPublic] = [_delivery(d, a) for d, a in rows[:DELIVERIES_PAGE]]
        shown = _endpoint_view(endpoint)
    return page(
        request,
        "admin_webhook.html",
        title=f"Admin · Webhook {endpoint_id}",
        active="admin",
        tab="webhooks",
        status=status,
        problem=problem,
        problem_at=problem_at,
        endpoint=shown,
        deliveries=deliveries,
        next_before=deliveries[-1].id if len(rows) > DELIVERIES_PAGE and deliveries else None,
        state=state if state in DELIVERY_STATES else "",
        states=DELIVERY_STATES,
        values=values or {},
        secret=secret,
        created=created,
        requeued=requeued,
        event_types=EVENT_TYPES,
        all_events=ALL_EVENTS,
        formats=FORMATS,
    )


def _endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the page shows of an endpoint: never the stored secrets."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "format": endpoint.format,
        "enabled": endpoint.enabled,
        "disabled_at": endpoint.disabled_at,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since,
        "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


@router.get("/admin/webhooks/{webhook_id}")
def webhook_page(
    request: Request, user: Admin, webhook_id: str, state: str = "", before: str = "", requeued: str = ""
) -> Response:
    return _webhook_page(
        request,
        parse_id(webhook_id, "webhook endpoint"),
        state=state,
        before=parse_id(before, "page") if before else None,
        requeued=int(requeued) if requeued.isascii() and requeued.isdigit() and len(requeued) < 10 else None,
    )


def _webhook_action(
    request: Request, webhook_id: str, where: str, values: dict[str, Any] | None, act: Any
) -> tuple[int, Response | None, Any]:
    """Run ``act(session, endpoint_id)`` in a transaction; a refusal re-renders the endpoint's page."""
    endpoint_id = parse_id(webhook_id, "webhook endpoint")
    try:
        with get_database(request).transaction() as session:
            result = act(session, endpoint_id)
    except DomainError as exc:
        problem = _url_problem(exc) if where == "edit" else problem_of(exc)
        failed = _webhook_page(
            request, endpoint_id, status=exc.status, problem=problem, problem_at=where, values=values
        )
        return endpoint_id, failed, None
    return endpoint_id, None, result


@router.post("/admin/webhooks/{webhook_id}")
def update_webhook(request: Request, user: Admin, form: PostedForm, webhook_id: str) -> Response:
    values: dict[str, Any] = {**form.values(), "events": form.getlist("events")}
    settings = settings_of(request)

    def act(session: Session, endpoint_id: int) -> None:
        body = validated(
            WebhookPatch,
            {
                "url": form.get("url"),
                "events": _events(form),
                "description": form.get("description"),
                "format": form.get("format") or None,
            },
        )
        webhooks_service.update_endpoint(
            session,
            actor=user.principal.actor,
            settings=settings,
            endpoint_id=endpoint_id,
            changes=body.model_dump(exclude_unset=True),
        )

    endpoint_id, failed, _ = _webhook_action(request, webhook_id, "edit", values, act)
    return failed or see_other(f"/desk/admin/webhooks/{endpoint_id}", ok="webhook_saved")


@router.post("/admin/webhooks/{webhook_id}/enabled")
def set_webhook_enabled(request: Request, user: Admin, form: PostedForm, webhook_id: str) -> Response:
    enabled = form.get("enabled") == "true"
    settings = settings_of(request)

    def act(session: Session, endpoint_id: int) -> None:
        body = validated(WebhookPatch, {"enabled": enabled})
        webhooks_service.update_endpoint(
            session,
            actor=user.principal.actor,
            settings=settings,
            endpoint_id=endpoint_id,
            changes=body.model_dump(exclude_unset=True),
        )

    endpoint_id, failed, _ = _webhook_action(request, webhook_id, "enabled", None, act)
    return failed or see_other(
        f"/desk/admin/webhooks/{endpoint_id}", ok="webhook_enabled" if enabled else "webhook_disabled"
    )


@router.post("/admin/webhooks/{webhook_id}/rotate")
def rotate_secret(request: Request, user: Admin, form: PostedForm, webhook_id: str) -> Response:
    def act(session: Session, endpoint_id: int) -> str:
        return webhooks_service.rotate_secret(session, actor=user.principal.actor, endpoint_id=endpoint_id).secret

    endpoint_id, failed, secret = _webhook_action(request, webhook_id, "rotate", None, act)
    return failed or _webhook_page(request, endpoint_id, secret=secret)


@router.post("/admin/webhooks/{webhook_id}/delete")
def delete_webhook(request: Request, user: Admin, form: PostedForm, webhook_id: str) -> Response:
    def act(session: Session, endpoint_id: int) -> None:
        webhooks_service.delete_endpoint(session, actor=user.principal.actor, endpoint_id=endpoint_id)

    _, failed, _ = _webhook_action(request, webhook_id, "delete", None, act)
    return failed or see_other("/desk/admin/webhooks", ok="webhook_deleted")


@router.post("/admin/webhooks/{webhook_id}/ping")
def ping_webhook(request: Request, user: Admin, form: PostedForm, webhook_id: str) -> Response:
    settings = settings_of(request)

    def act(session: Session, endpoint_id: int) -> None:
        webhooks_service.ping(session, settings=settings, endpoint_id=endpoint_id)

    endpoint_id, failed, _ = _webhook_action(request, webhook_id, "ping", None, act)
    return failed or see_other(f"/desk/admin/webhooks/{endpoint_id}", ok="pinged")


@router.post("/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
def redeliver(request: Request, user: Admin, form: PostedForm, webhook_id: str, delivery_id: str) -> Response:
    did = parse_id(delivery_id, "delivery")

    def act(session: Session, endpoint_id: int) -> None:
        webhooks_service.redeliver(session, endpoint_id=endpoint_id, delivery_id=did)

    endpoint_id, failed, _ = _webhook_action(request, webhook_id, f"delivery-{did}", None, act)
    return failed or see_other(f"/desk/admin/webhooks/{endpoint_id}?ok=redelivered#delivery-{did}")


@router.post("/admin/webhooks/{webhook_id}/recover")
def recover(request: Request, user: Admin, form: PostedForm, webhook_id: str) -> Response:
    values = form.values()

    def act(session: Session, endpoint_id: int) -> int:
        body = validated(RecoverIn, {"since": utc_field(form.optional("since")) or ""})
        return webhooks_service.recover(session, endpoint_id=endpoint_id, since=body.since)

    endpoint_id, failed, count = _webhook_action(request, webhook_id, "recover", values, act)
    return failed or see_other(f"/desk/admin/webhooks/{endpoint_id}?requeued={count}", ok="recovered")
