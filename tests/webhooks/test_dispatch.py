"""Fan-out and delivery, driven one pass at a time against a verifying loopback receiver."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.audit.models import AuditEvent, OutboxEvent
from app.clock import clock
from app.webhooks.models import EVENT_TYPES

if TYPE_CHECKING:
    from .conftest import Bench, HookReceiver


def _states(bench: Bench, endpoint_id: int) -> list[str]:
    return [d.state for d, _ in bench.deliveries(endpoint_id)]


def test_every_event_reaches_its_subscribers_signed(bench: Bench, hooks: HookReceiver) -> None:
    # One pass, no retries: a generous timeout so a starved CI machine cannot turn a send into a
    # scheduled retry (the timeout itself is covered by the /hang tests).
    bench.tuned(webhook_timeout=15.0)
    everything, secret_all = bench.endpoint(hooks.url("/all"), ["*"])
    published, secret_pub = bench.endpoint(hooks.url("/published"), ["claim.published"])
    hooks.trust("/all", secret_all)
    hooks.trust("/published", secret_pub)
    for type_ in EVENT_TYPES:
        bench.emit(type_, {"kind": type_})

    stats = bench.run()

    assert stats.dispatched == len(EVENT_TYPES)
    got = hooks.at("/all")
    assert sorted(h.json()["type"] for h in got) == sorted(EVENT_TYPES)
    assert all(h.verified for h in hooks.hits), [h.error for h in hooks.hits if not h.verified]
    assert [h.json()["type"] for h in hooks.at("/published")] == ["claim.published"]
    # The webhook-id is the delivery's, and the body is {type, timestamp, data}.
    logged = {d.msg_id: d for d, _ in bench.deliveries(everything)}
    for hit in got:
        assert hit.msg_id in logged
        body = hit.json()
        assert set(body) == {"type", "timestamp", "data"}
        assert body["data"] == {"kind": body["type"]}
        assert body["timestamp"].endswith("Z")
        assert hit.body == logged[hit.msg_id].body.encode()
    assert set(_states(bench, everything)) == {"delivered"}
    assert _states(bench, published) == ["delivered"]
    with bench.database.read_session() as session:
        assert session.scalar(sa.select(sa.func.count()).where(OutboxEvent.dispatched_at.is_(None))) == 0


def test_claim_events_carry_the_snapshot_and_an_api_link(
    client: Any, desk: Any, bench: Bench, hooks: HookReceiver
) -> None:
    _, secret = bench.endpoint(hooks.url("/claims"), ["claim.created", "claim.updated"])
    hooks.trust("/claims", secret)
    editor = desk.person("editor")
    r = client.post("/api/v1/claims", json={"text": "The bridge cost 3 billion"}, headers=editor.headers)
    assert r.status_code == 201, r.text
    claim_id = r.json()["id"]
    r = client.patch(f"/api/v1/claims/{claim_id}", json={"claimant": "A minister"}, headers=editor.headers)
    assert r.status_code == 200, r.text

    bench.run()

    bodies = [h.json() for h in hooks.at("/claims")]
    assert [b["type"] for b in sorted(bodies, key=lambda b: b["type"])] == ["claim.created", "claim.updated"]
    assert all(h.verified for h in hooks.hits)
    for body in bodies:
        assert body["data"]["claim"]["id"] == claim_id
        assert body["data"]["links"]["api"] == f"{bench.settings.public_base_url}/api/v1/claims/{claim_id}"
    updated = next(b for b in bodies if b["type"] == "claim.updated")
    assert updated["data"]["claim"]["claimant"] == "A minister"


def test_retries_follow_the_schedule_and_retry_after(bench: Bench, hooks: HookReceiver) -> None:
    bench.tuned(webhook_retry_schedule=[1.0, 1.0, 1.0, 1.0])
    endpoint_id, secret = bench.endpoint(hooks.url("/flaky"))
    hooks.trust("/flaky", secret)
    hooks.script(
        "/flaky",
        {"status": 500, "body": b"boom"},
        {"status": 503, "headers": {"Retry-After": "30"}},
        {"status": 429, "headers": {"Retry-After": "60"}},
    )
    bench.emit("claim.updated")

    bench.run()  # 500
    ((delivery, attempts),) = bench.deliveries(endpoint_id)
    assert delivery.state == "pending" and [a.status_code for a in attempts] == [500]
    assert attempts[0].response_excerpt == "boom" and attempts[0].error == "HTTP 500"
    assert bench.run().attempted == 0  # not due yet
    clock.advance(2)
    bench.run()  # 503, Retry-After: 30
    ((delivery, _),) = bench.deliveries(endpoint_id)
    assert (delivery.next_attempt_at - clock.now()).total_seconds() > 25
    clock.advance(20)
    assert bench.run().attempted == 0  # Retry-After is honoured over the 1 s schedule
    clock.advance(15)
    bench.run()  # 429, Retry-After: 60
    clock.advance(40)
    assert bench.run().attempted == 0
    clock.advance(25)
    bench.run()  # 200

    ((delivery, attempts),) = bench.deliveries(endpoint_id)
    assert delivery.state == "delivered"
    assert [a.status_code for a in attempts] == [500, 503, 429, 200]
    assert [a.outcome for a in attempts] == ["failure", "failure", "failure", "success"]
    assert all(a.latency_ms is not None for a in attempts)
    ids = hooks.msg_ids("/flaky")
    assert len(ids) == 4 and set(ids) == {delivery.msg_id}
    assert all(h.verified for h in hooks.hits)
    assert bench.endpoint_row(endpoint_id).failing_since is None


def test_a_schedule_of_n_gaps_makes_n_plus_one_attempts(bench: Bench, hooks: HookReceiver) -> None:
    endpoint_id, _ = bench.endpoint(hooks.url("/down"))  # schedule [0.2, 0.5]
    hooks.answer("/down", status=500)
    bench.emit("claim.updated")
    for _ in range(5):
        bench.run()
        clock.advance(1)
    ((delivery, attempts),) = bench.deliveries(endpoint_id)
    assert delivery.state == "failed" and delivery.next_attempt_at is None
    assert [a.number for a in attempts] == [1, 2, 3]
    assert len(hooks.at("/down")) == 3
    assert bench.endpoint_row(endpoint_id).enabled  # failing for seconds, not days


def test_410_disables_the_endpoint_and_announces_it(bench: Bench, hooks: HookReceiver) -> None:
    gone_id, _ = bench.endpoint(hooks.url("/gone"))
    watcher_id, secret = bench.endpoint(hooks.url("/watch"), ["webhook.endpoint_disabled"])
    hooks.trust("/watch", secret)
    hooks.answer("/gone", status=410, body=b"unsubscribed")
    # Only one in flight at a time for the gone endpoint, so the rest are still queued when it answers.
    for n in range(3):
        bench.emit("claim.updated", {"n": n})

    bench.run(per_endpoint=1)

    endpoint = bench.endpoint_row(gone_id)
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    assert len(hooks.at("/gone")) == 1
    assert _states(bench, gone_id) == ["failed", "failed", "failed"]
    (announced,) = hooks.at("/watch")
    assert announced.verified
    assert announced.json()["type"] == "webhook.endpoint_disabled"
    assert announced.json()["data"]["endpoint_id"] == gone_id
    with bench.database.read_session() as session:
        trail = session.scalars(sa.select(AuditEvent.type).where(AuditEvent.subject == f"webhook:{gone_id}")).all()
    assert "webhook.endpoint_disabled" in trail
    # New events no longer queue for it.
    bench.emit("claim.updated")
    bench.run()
    assert len(bench.deliveries(gone_id)) == 3
    assert _states(bench, watcher_id) == ["delivered"]


def test_unbroken_failure_for_the_disable_period_disables(bench: Bench, hooks: HookReceiver) -> None:
    bench.tuned(webhook_retry_schedule=[100.0, 100.0, 100.0], webhook_disable_after=150.0)
    endpoint_id, _ = bench.endpoint(hooks.url("/down"))
    hooks.answer("/down", status=502)
    bench.emit("claim.updated")
    bench.run()
    assert bench.endpoint_row(endpoint_id).failing_since is not None
    clock.advance(130)
    bench.run()
    assert bench.endpoint_row(endpoint_id).enabled  # 130 s < 150 s
    clock.advance(130)
    bench.run()
    endpoint = bench.endpoint_row(endpoint_id)
    assert not endpoint.enabled and "failed" in endpoint.disabled_reason
    assert _states(bench, endpoint_id) == ["failed"]


def test_a_hang_past_the_timeout_fails_without_holding_up_others(bench: Bench, hooks: HookReceiver) -> None:
    # The timeout is long next to a loopback delivery, so "alongside" stays clear of it on a busy machine.
    bench.tuned(webhook_timeout=1.5)
    slow_id, _ = bench.endpoint(hooks.url("/hang"))
    fast_id, _ = bench.endpoint(hooks.url("/fast"))
    hooks.answer("/hang", hold=5.0)
    bench.emit("claim.updated")
    started = time.monotonic()
    bench.run()
    elapsed = time.monotonic() - started

    ((slow, attempts),) = bench.deliveries(slow_id)
    assert slow.state == "pending" and attempts[0].error == "timeout"
    assert _states(bench, fast_id) == ["delivered"]
    (fast_hit,) = hooks.at("/fast")
    assert fast_hit.at - started < 1.2  # sent alongside, not after, the hanging one
    assert elapsed < 4.0


def test_redirects_are_not_followed(bench: Bench, hooks: HookReceiver) -> None:
    endpoint_id, _ = bench.endpoint(hooks.url("/moved"))
    hooks.answer("/moved", status=302, headers={"Location": hooks.url("/elsewhere")})
    bench.emit("claim.updated")
    bench.run()
    ((delivery, attempts),) = bench.deliveries(endpoint_id)
    assert attempts[0].status_code == 302 and "redirect not followed" in attempts[0].error
    assert delivery.state == "pending"
    assert hooks.at("/elsewhere") == []


def test_slack_format(bench: Bench, hooks: HookReceiver) -> None:
    _, secret = bench.endpoint(hooks.url("/slack"), ["claim.published"], fmt="slack")
    hooks.trust("/slack", secret)
    snapshot = {"id": 7, "text": "Crime doubled <last year>", "state": "published", "verdict": {"rating": "false"}}
    bench.emit("claim.published", {"claim": snapshot}, claim_id=None)
    bench.run()
    (hit,) = hooks.at("/slack")
    assert hit.verified
    body = hit.json()
    assert set(body) == {"text", "blocks"}
    assert "Claim #7 published" in body["text"] and "&lt;last year&gt;" in body["text"]


def test_rotation_signs_with_both_secrets_for_24_hours(
    bench: Bench, hooks: HookReceiver, client: Any, desk: Any
) -> None:
    admin = desk.person("admin")
    endpoint_id, old_secret = bench.endpoint(hooks.url("/old"))
    r = client.post(f"/api/v1/webhooks/{endpoint_id}/rotate-secret", headers=admin.headers)
    assert r.status_code == 200, r.text
    new_secret = r.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    hooks.trust("/old", old_secret)
    bench.emit("claim.updated")
    bench.run()
    (hit,) = hooks.at("/old")
    assert hit.verified
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    from standardwebhooks import Webhook

    Webhook(new_secret).verify(hit.body, hit.headers)

    clock.advance(24 * 3600 + 60)
    bench.emit("claim.updated")
    bench.run()
    late = hooks.at("/old")[-1]
    assert late.verified is False  # the old secret no longer signs
    assert len(late.headers["webhook-signature"].split(" ")) == 1
    Webhook(new_secret).verify(late.body, late.headers)
