"""The dispatcher's prebuilt statements: recording, claiming and fan-out give the same outcomes as
building each statement per call did, on both engines (no receiver: results are made up here)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlmodel import col

from app.audit.models import OutboxEvent
from app.audit.service import Actor
from app.clock import clock
from app.webhooks import dispatcher, service
from app.webhooks.dispatcher import Job, claim_due, dispatch_outbox, record_results
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.sender import AttemptResult

if TYPE_CHECKING:
    from .conftest import Bench

OK = AttemptResult("success", 200, 1, "ok", None, None)
FAIL = AttemptResult("failure", 500, 1, "boom", "HTTP 500", None)


def _endpoint(bench: Bench, path: str, events: list[str] | None = None) -> int:
    endpoint_id, _ = bench.endpoint(f"http://127.0.0.1:9{path}", events)
    return endpoint_id


def _claim(bench: Bench, events: int, **kwargs: Any) -> list[Job]:
    for n in range(events):
        bench.emit("claim.updated", {"n": n})
    dispatch_outbox(bench.database, bench.settings)
    return claim_due(bench.database, bench.settings, limit=kwargs.pop("limit", 100), **kwargs)


def _failing_since(bench: Bench, endpoint_id: int) -> datetime | None:
    endpoint = bench.endpoint_row(endpoint_id)
    assert endpoint is not None
    return endpoint.failing_since


def _set_failing_since(bench: Bench, endpoint_id: int, when: datetime) -> None:
    with bench.database.transaction() as session:
        session.execute(
            sa.update(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id).values(failing_since=when)
        )


def _delivery(bench: Bench, delivery_id: int) -> WebhookDelivery:
    with bench.database.read_session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        return delivery


def test_a_failure_starts_the_streak_and_schedules_a_retry_and_a_success_ends_it(bench: Bench) -> None:
    endpoint_id = _endpoint(bench, "/a")
    first, second = _claim(bench, 2)

    before = clock.now()
    record_results(bench.database, bench.settings, [(first, FAIL)])
    streak = _failing_since(bench, endpoint_id)
    assert streak is not None and streak >= before
    failed = _delivery(bench, first.delivery_id)
    assert failed.state == "pending" and failed.lease_token is None and failed.last_error == "HTTP 500"
    assert failed.next_attempt_at is not None
    assert timedelta(0) < failed.next_attempt_at - before < timedelta(seconds=5)  # the schedule's 0.2 s

    # A batch of successes only (the path without endpoint entities) ends the streak.
    record_results(bench.database, bench.settings, [(second, OK)])
    assert _failing_since(bench, endpoint_id) is None
    done = _delivery(bench, second.delivery_id)
    assert (done.state, done.next_attempt_at, done.lease_token, done.finished_at is not None) == (
        "delivered",
        None,
        None,
        True,
    )


def test_in_one_batch_results_count_in_delivery_order(bench: Bench) -> None:
    endpoint_id = _endpoint(bench, "/a")
    one, two, three, four = _claim(bench, 4)

    # The success comes first in delivery order, so the later failure leaves the endpoint failing.
    record_results(bench.database, bench.settings, [(two, FAIL), (one, OK)])
    streak = _failing_since(bench, endpoint_id)
    assert streak is not None
    assert _delivery(bench, one.delivery_id).state == "delivered"
    assert _delivery(bench, two.delivery_id).next_attempt_at is not None

    # A failure during the streak keeps its start; the later success ends it.
    record_results(bench.database, bench.settings, [(four, OK), (three, FAIL)])
    assert _failing_since(bench, endpoint_id) is None
    assert _delivery(bench, three.delivery_id).state == "pending"
    assert _delivery(bench, four.delivery_id).state == "delivered"


def test_a_success_leaves_other_endpoints_streaks_alone(bench: Bench) -> None:
    healthy = _endpoint(bench, "/a")
    failing = _endpoint(bench, "/b", ["claim.created"])
    since = clock.now() - timedelta(hours=1)
    _set_failing_since(bench, failing, since)
    jobs = _claim(bench, 2)
    assert {job.endpoint_id for job in jobs} == {healthy}

    record_results(bench.database, bench.settings, [(job, OK) for job in jobs])

    assert _failing_since(bench, healthy) is None
    assert _failing_since(bench, failing) == since


def test_a_result_whose_lease_was_taken_over_changes_nothing(bench: Bench) -> None:
    endpoint_id = _endpoint(bench, "/a")
    since = clock.now() - timedelta(hours=1)
    _set_failing_since(bench, endpoint_id, since)
    (stalled,) = _claim(bench, 1)
    clock.advance(bench.settings.webhook_timeout + 16)
    (taken,) = claim_due(bench.database, bench.settings, limit=10)
    assert taken.delivery_id == stalled.delivery_id and taken.lease_token != stalled.lease_token

    # The first worker's late success neither delivers nor ends the streak: the new lease holder decides.
    record_results(bench.database, bench.settings, [(stalled, OK)])
    delivery = _delivery(bench, taken.delivery_id)
    assert (delivery.state, delivery.lease_token) == ("pending", taken.lease_token)
    assert _failing_since(bench, endpoint_id) == since
    # Same for a late failure.
    record_results(bench.database, bench.settings, [(stalled, FAIL)])
    delivery = _delivery(bench, taken.delivery_id)
    assert (delivery.state, delivery.lease_token, delivery.last_error) == ("pending", taken.lease_token, None)

    record_results(bench.database, bench.settings, [(taken, OK)])
    assert _delivery(bench, taken.delivery_id).state == "delivered"
    assert _failing_since(bench, endpoint_id) is None


@pytest.mark.parametrize("outcome", [OK, FAIL], ids=["success", "failure"])
def test_results_for_a_deleted_endpoint_are_dropped(bench: Bench, outcome: AttemptResult) -> None:
    gone = _endpoint(bench, "/a")
    kept = _endpoint(bench, "/b")
    jobs = _claim(bench, 1)
    with bench.database.transaction() as session:
        service.delete_endpoint(session, actor=Actor.system(), endpoint_id=gone)

    record_results(bench.database, bench.settings, [(job, outcome) for job in jobs])

    (survivor,) = [job for job in jobs if job.endpoint_id == kept]
    expected = "delivered" if outcome is OK else "pending"
    assert _delivery(bench, survivor.delivery_id).state == expected


def test_claims_respect_each_endpoints_room_across_union_chunks(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    # Three endpoints in chunks of two: statements for two sizes, each reused with new parameters.
    monkeypatch.setattr(dispatcher, "CLAIM_UNION_CHUNK", 2)
    a, b, c = (_endpoint(bench, f"/{name}") for name in "abc")
    jobs = _claim(bench, 4, busy={a: 1, c: 2}, per_endpoint=3)
    per_endpoint = {eid: sorted(job.delivery_id for job in jobs if job.endpoint_id == eid) for eid in (a, b, c)}
    assert {eid: len(ids) for eid, ids in per_endpoint.items()} == {a: 2, b: 3, c: 1}

    # Other room, other limit: the oldest due win across endpoints.
    more = claim_due(bench.database, bench.settings, limit=2, busy={}, per_endpoint=4)
    with bench.database.read_session() as session:
        due = session.scalars(
            sa.select(col(WebhookDelivery.id))
            .where(col(WebhookDelivery.lease_token).is_(None))
            .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
        ).all()
    assert len(due) == 12 - 6 - 2
    assert all(job.delivery_id < min(due) for job in more)
    claimed = {job.delivery_id for job in jobs} | {job.delivery_id for job in more}
    assert len(claimed) == 8


def test_fan_out_honours_the_batch_subscriptions_and_disabled_endpoints(bench: Bench) -> None:
    everything = _endpoint(bench, "/all")
    created_only = _endpoint(bench, "/created", ["claim.created"])
    disabled = _endpoint(bench, "/off")
    with bench.database.transaction() as session:
        service.update_endpoint(
            session, actor=Actor.system(), settings=bench.settings, endpoint_id=disabled, changes={"enabled": False}
        )
    with bench.database.transaction() as session:  # straight into the outbox: claim 7 need not exist
        session.add(OutboxEvent(type="claim.created", claim_id=7, payload={"claim": {"id": 7}}))
        session.flush()
        session.add(OutboxEvent(type="claim.updated", payload={"n": 2}))

    assert dispatch_outbox(bench.database, bench.settings, batch=1) == 1
    assert dispatch_outbox(bench.database, bench.settings, batch=1) == 1
    assert dispatch_outbox(bench.database, bench.settings, batch=1) == 0

    types = {eid: [d.event_type for d, _ in bench.deliveries(eid)] for eid in (everything, created_only, disabled)}
    assert types == {everything: ["claim.created", "claim.updated"], created_only: ["claim.created"], disabled: []}
    first = bench.deliveries(everything)[0][0]
    assert first.outbox_id is not None and first.state == "pending"
    assert json.loads(first.body)["data"]["links"]["api"].endswith("/api/v1/claims/7")
    assert bench.deliveries(created_only)[0][0].body == first.body  # one rendering per format
    with bench.database.read_session() as session:
        assert session.scalar(sa.select(sa.func.count()).where(col(OutboxEvent.dispatched_at).is_(None))) == 0


def test_row_locks_keep_their_kind_and_order(bench: Bench) -> None:
    """PostgreSQL: fan-out skips locked outbox rows; claims skip locked deliveries; recording locks the
    endpoints, then the deliveries, in both the all-success and the failure path. SQLite: no locks."""
    _endpoint(bench, "/a")
    seen: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = bench.database.write_engine
    sa.event.listen(engine, "before_cursor_execute", remember)
    try:
        one, two = _claim(bench, 2)
        record_results(bench.database, bench.settings, [(one, OK)])
        record_results(bench.database, bench.settings, [(two, FAIL)])
    finally:
        sa.event.remove(engine, "before_cursor_execute", remember)

    locks = [(s.split(" FROM ", 1)[1].split()[0], s[s.index(" FOR ") + 1 :]) for s in seen if " FOR " in s]
    if not bench.database.is_postgres:
        assert locks == []
        return
    assert locks == [
        ("outbox", "FOR UPDATE SKIP LOCKED"),
        ("webhook_deliveries", "FOR NO KEY UPDATE SKIP LOCKED"),
        ("webhook_endpoints", "FOR NO KEY UPDATE"),
        ("webhook_deliveries", "FOR NO KEY UPDATE"),
        ("webhook_endpoints", "FOR NO KEY UPDATE"),
        ("webhook_deliveries", "FOR NO KEY UPDATE"),
    ]


def test_a_round_fans_out_records_and_claims_in_one_transaction(bench: Bench) -> None:
    _endpoint(bench, "/round")
    earlier = _claim(bench, 1)  # one attempt on the wire, to be recorded this round
    for n in range(3):
        bench.emit("claim.updated", {"n": n})
    commits: list[int] = []

    def committed(conn: Any) -> None:
        commits.append(1)

    sa.event.listen(bench.database.write_engine, "commit", committed)
    try:
        fanned, jobs = dispatcher.cycle(
            bench.database, bench.settings, [(earlier[0], OK)], limit=10, busy={}, fan_out=True
        )
    finally:
        sa.event.remove(bench.database.write_engine, "commit", committed)
    assert fanned == 3
    assert len(jobs) == 3  # the new deliveries, claimed in the transaction that made them
    assert len(commits) == 1
    assert _delivery(bench, earlier[0].delivery_id).state == "delivered"


def test_a_fan_out_that_fails_is_rolled_back_alone(bench: Bench) -> None:
    """A corrupt outbox row (its payload is not an object) fails the fan-out; the round still
    records what finished and claims what is due, and the row waits, undispatched."""
    _endpoint(bench, "/poison")
    earlier = _claim(bench, 2, limit=1)  # one claimed now, one left due
    with bench.database.transaction() as session:
        session.add(OutboxEvent(type="claim.updated", payload=[1, 2]))  # type: ignore[arg-type]
    fanned, jobs = dispatcher.cycle(bench.database, bench.settings, [(earlier[0], OK)], limit=10, busy={}, fan_out=True)
    assert fanned == -1
    assert _delivery(bench, earlier[0].delivery_id).state == "delivered"
    assert len(jobs) == 1  # the other delivery, claimed all the same
    with bench.database.read_session() as session:
        waiting = session.execute(
            sa.select(sa.func.count()).select_from(OutboxEvent).where(col(OutboxEvent.dispatched_at).is_(None))
        ).scalar_one()
    assert waiting == 1
