"""The admin API for webhook endpoints and their delivery log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.clock import clock

if TYPE_CHECKING:
    from .conftest import Bench, HookReceiver

PROBLEM = "application/problem+json"


@pytest.fixture
def admin(desk: Any) -> Any:
    return desk.person("admin")


def _create(client: Any, admin: Any, url: str, **extra: Any) -> dict[str, Any]:
    r = client.post("/api/v1/webhooks", json={"url": url, "events": ["*"], **extra}, headers=admin.headers)
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store", r.text
    return dict(r.json())


def test_only_admins_manage_webhooks(client: Any, desk: Any, hooks: HookReceiver) -> None:
    body = {"url": hooks.url("/x"), "events": ["*"]}
    r = client.post("/api/v1/webhooks", json=body)
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    editor = desk.person("editor")
    for method, path in [("post", "/api/v1/webhooks"), ("get", "/api/v1/webhooks"), ("get", "/api/v1/webhooks/1")]:
        r = client.request(method.upper(), path, json=body if method == "post" else None, headers=editor.headers)
        assert r.status_code == 403, (method, path, r.text)
        assert r.headers["content-type"] == PROBLEM


def test_create_shows_the_secret_once(client: Any, admin: Any, hooks: HookReceiver) -> None:
    r = client.post(
        "/api/v1/webhooks",
        json={"url": hooks.url("/in"), "events": ["claim.published", "claim.published"], "description": "desk"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["claim.published"]
    assert created["format"] == "standard" and created["enabled"] is True
    assert r.headers["location"] == f"/api/v1/webhooks/{created['id']}"

    one = client.get(f"/api/v1/webhooks/{created['id']}", headers=admin.headers)
    listed = client.get("/api/v1/webhooks", headers=admin.headers)
    assert one.status_code == 200 and listed.status_code == 200
    assert "secret" not in one.json()
    assert [e["id"] for e in listed.json()["items"]] == [created["id"]]
    assert created["secret"] not in one.text + listed.text


BAD_INPUT = [
    ("http://10.0.0.7/hook", ["*"]),
    ("http://169.254.169.254/latest", ["*"]),
    ("http://[::1]:8080/", ["*"]),
    ("http://167772161/", ["*"]),  # 10.0.0.1 spelled as one number
    ("ftp://hooks.example.org/", ["*"]),
    ("https://hooks.example.org/", ["claim.exploded"]),
    ("https://hooks.example.org/", ["*", "claim.created"]),
    ("https://hooks.example.org/", []),
]


def test_bad_targets_and_events_are_422(client: Any, admin: Any) -> None:
    for url, events in BAD_INPUT:
        r = client.post("/api/v1/webhooks", json={"url": url, "events": events}, headers=admin.headers)
        assert r.status_code == 422, (url, events, r.text)
        assert r.headers["content-type"] == PROBLEM
    assert client.get("/api/v1/webhooks", headers=admin.headers).json()["items"] == []


def test_unknown_ids_are_404(client: Any, admin: Any) -> None:
    for path in ("/api/v1/webhooks/999", "/api/v1/webhooks/abc", "/api/v1/webhooks/999/deliveries"):
        r = client.get(path, headers=admin.headers)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_patch_rotate_delete_are_audited(client: Any, admin: Any, bench: Bench, hooks: HookReceiver) -> None:
    created = _create(client, admin, hooks.url("/a"))
    wid = created["id"]
    r = client.patch(
        f"/api/v1/webhooks/{wid}",
        json={"events": ["claim.created"], "format": "slack", "description": "ops"},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["claim.created"] and r.json()["format"] == "slack"
    assert (
        client.patch(f"/api/v1/webhooks/{wid}", json={"url": "http://192.168.1.1/"}, headers=admin.headers).status_code
        == 422
    )

    r = client.post(f"/api/v1/webhooks/{wid}/rotate-secret", headers=admin.headers)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json()["secret"] != created["secret"]
    assert r.json()["previous_secret_expires_at"] is not None

    r = client.delete(f"/api/v1/webhooks/{wid}", headers=admin.headers)
    assert r.status_code == 204
    assert client.get(f"/api/v1/webhooks/{wid}", headers=admin.headers).status_code == 404
    with bench.database.read_session() as session:
        events = session.execute(
            sa.select(AuditEvent.type, AuditEvent.data)
            .where(AuditEvent.subject == f"webhook:{wid}")
            .order_by(AuditEvent.seq)
        ).all()
    assert [t for t, _ in events] == [
        "webhook.endpoint_created",
        "webhook.endpoint_updated",
        "webhook.secret_rotated",
        "webhook.endpoint_deleted",
    ]
    assert all("whsec_" not in str(data) for _, data in events)


def test_disable_and_reenable(client: Any, admin: Any, bench: Bench, hooks: HookReceiver) -> None:
    wid = _create(client, admin, hooks.url("/down"))["id"]
    hooks.answer("/down", status=500)
    bench.emit("claim.updated")
    bench.run()
    assert client.get(f"/api/v1/webhooks/{wid}", headers=admin.headers).json()["failing_since"] is not None

    r = client.patch(f"/api/v1/webhooks/{wid}", json={"enabled": False}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["disabled_at"]
    log = client.get(f"/api/v1/webhooks/{wid}/deliveries", headers=admin.headers).json()["items"]
    assert [d["state"] for d in log] == ["failed"] and "disabled" in log[0]["last_error"]
    assert client.post(f"/api/v1/webhooks/{wid}/ping", headers=admin.headers).status_code == 409

    r = client.patch(f"/api/v1/webhooks/{wid}", json={"enabled": True}, headers=admin.headers)
    shown = r.json()
    assert shown["enabled"] is True and shown["failing_since"] is None and shown["disabled_at"] is None


def test_ping_and_the_delivery_log(client: Any, admin: Any, bench: Bench, hooks: HookReceiver) -> None:
    # A retry must not fall due during the pass, however slow the machine: the log is read mid-schedule.
    bench.tuned(webhook_retry_schedule=[60.0])
    created = _create(client, admin, hooks.url("/ping"), events=["claim.published"])
    wid = created["id"]
    hooks.trust("/ping", created["secret"])
    hooks.script("/ping", {"status": 503, "body": b"warming up"})
    for _ in range(3):
        r = client.post(f"/api/v1/webhooks/{wid}/ping", headers=admin.headers)
        assert r.status_code == 202, r.text
        assert r.json()["event_type"] == "webhook.ping" and r.json()["webhook_id"].startswith("msg_")
    bench.run(per_endpoint=1)

    assert all(h.verified for h in hooks.hits) and len(hooks.hits) == 3
    assert {h.json()["type"] for h in hooks.hits} == {"webhook.ping"}
    r = client.get(f"/api/v1/webhooks/{wid}/deliveries?limit=2", headers=admin.headers)
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"] and 'rel="next"' in r.headers["link"]
    rest = client.get(
        f"/api/v1/webhooks/{wid}/deliveries", params={"limit": 2, "cursor": page["next_cursor"]}, headers=admin.headers
    ).json()
    items = page["items"] + rest["items"]
    assert len(items) == 3 and rest["next_cursor"] is None
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    retrying = [i for i in items if i["state"] == "pending"]
    assert len(retrying) == 1
    (attempt,) = retrying[0]["attempts"]
    assert attempt["status_code"] == 503 and attempt["response_excerpt"] == "warming up"
    assert attempt["error"] == "HTTP 503" and attempt["latency_ms"] is not None
    assert retrying[0]["next_attempt_at"] is not None
    only_failed = client.get(f"/api/v1/webhooks/{wid}/deliveries?state=failed", headers=admin.headers).json()
    assert only_failed["items"] == []
    bad = client.get(f"/api/v1/webhooks/{wid}/deliveries?cursor=nonsense", headers=admin.headers)
    assert bad.status_code == 400


def test_redeliver_keeps_the_webhook_id(client: Any, admin: Any, bench: Bench, hooks: HookReceiver) -> None:
    created = _create(client, admin, hooks.url("/r"))
    wid = created["id"]
    hooks.trust("/r", created["secret"])
    bench.emit("claim.updated")
    bench.run()
    (delivery,) = client.get(f"/api/v1/webhooks/{wid}/deliveries", headers=admin.headers).json()["items"]
    assert delivery["state"] == "delivered"

    r = client.post(f"/api/v1/webhooks/{wid}/deliveries/{delivery['id']}/redeliver", headers=admin.headers)
    assert r.status_code == 202 and r.json()["state"] == "pending"
    bench.run()
    assert hooks.msg_ids("/r") == [delivery["webhook_id"]] * 2
    assert all(h.verified for h in hooks.hits)
    (again,) = client.get(f"/api/v1/webhooks/{wid}/deliveries", headers=admin.headers).json()["items"]
    assert again["state"] == "delivered" and [a["number"] for a in again["attempts"]] == [1, 2]
    other = _create(client, admin, hooks.url("/other"))
    r = client.post(f"/api/v1/webhooks/{other['id']}/deliveries/{delivery['id']}/redeliver", headers=admin.headers)
    assert r.status_code == 404


def test_recover_requeues_failed_deliveries_since(client: Any, admin: Any, bench: Bench, hooks: HookReceiver) -> None:
    created = _create(client, admin, hooks.url("/outage"))
    wid = created["id"]
    hooks.trust("/outage", created["secret"])
    hooks.answer("/outage", status=500)
    bench.emit("claim.updated", {"n": "old"})
    for _ in range(4):
        bench.run()
        clock.advance(1)
    clock.advance(3600)
    since = clock.now()
    clock.advance(1)
    for n in range(3):
        bench.emit("claim.updated", {"n": n})
    for _ in range(4):
        bench.run()
        clock.advance(1)
    log = client.get(f"/api/v1/webhooks/{wid}/deliveries", headers=admin.headers).json()["items"]
    assert [d["state"] for d in log] == ["failed"] * 4
    failed_ids = {d["webhook_id"] for d in log[:3]}

    hooks.answer("/outage", status=200)
    r = client.post(f"/api/v1/webhooks/{wid}/recover", json={"since": since.isoformat()}, headers=admin.headers)
    assert r.status_code == 202 and r.json() == {"requeued": 3}
    bench.run()
    log = client.get(f"/api/v1/webhooks/{wid}/deliveries", headers=admin.headers).json()["items"]
    assert [d["state"] for d in log] == ["delivered"] * 3 + ["failed"]
    assert set(hooks.msg_ids("/outage")[-3:]) == failed_ids
    assert [a["number"] for a in log[0]["attempts"]] == [1, 2, 3, 4]
    assert all(h.verified for h in hooks.hits)
    naive = client.post(f"/api/v1/webhooks/{wid}/recover", json={"since": "2026-01-01T00:00:00"}, headers=admin.headers)
    assert naive.status_code == 422


def test_metrics_report_the_backlog_and_attempts(
    client: Any, admin: Any, app: Any, bench: Bench, hooks: HookReceiver
) -> None:
    created = _create(client, admin, hooks.url("/m"))
    client.post(f"/api/v1/webhooks/{created['id']}/ping", headers=admin.headers)
    clock.advance(90)
    text = client.get("/metrics").text
    assert "claimdesk_webhook_deliveries_pending 1.0" in text
    age = next(line for line in text.splitlines() if line.startswith("claimdesk_webhook_oldest_pending_age_seconds"))
    assert float(age.split()[-1]) >= 89
    bench.run(metrics=app.state.webhook_metrics)
    text = client.get("/metrics").text
    assert "claimdesk_webhook_deliveries_pending 0.0" in text
    assert 'claimdesk_webhook_attempts_total{outcome="success"} 1.0' in text
