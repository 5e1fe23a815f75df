"""Leases, crashes and several workers: at-least-once delivery, never two copies of one attempt at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.clock import clock
from app.db import make_database
from app.main import create_app
from app.webhooks.dispatcher import claim_due, dispatch_outbox
from app.webhooks.models import WebhookDelivery
from app.worker import IN_PROCESS_ENV, BackgroundWorker, Worker

if TYPE_CHECKING:
    from .conftest import Bench, HookReceiver

REPO = Path(__file__).resolve().parents[2]


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _pending(bench: Bench) -> int:
    with bench.database.read_session() as session:
        return int(session.scalar(sa.select(sa.func.count()).where(WebhookDelivery.state != "delivered")) or 0)


def _worker_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
    env.update(
        PYTHONPATH=str(REPO),
        CLAIMDESK_DATABASE_URL=db_url,
        CLAIMDESK_WEBHOOK_ALLOWED_CIDRS="127.0.0.0/8",
        CLAIMDESK_WEBHOOK_TIMEOUT="2",
        CLAIMDESK_WEBHOOK_RETRY_SCHEDULE="0.2,0.5",
        CLAIMDESK_WORKER_POLL_SECONDS="0.05",
        CLAIMDESK_LOG_LEVEL="WARNING",
    )
    return env


def _start_worker(db_url: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        env=_worker_env(db_url),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_an_expired_lease_is_sent_again_with_the_same_id(bench: Bench, hooks: HookReceiver) -> None:
    endpoint_id, secret = bench.endpoint(hooks.url("/a"))
    hooks.trust("/a", secret)
    bench.emit("claim.updated")
    dispatch_outbox(bench.database, bench.settings)
    (job,) = claim_due(bench.database, bench.settings, limit=10)  # ...and the worker dies here

    assert bench.run().attempted == 0  # leased: nobody else touches it
    clock.advance(bench.settings.webhook_timeout + 16)
    assert bench.run().attempted == 1

    ((delivery, attempts),) = bench.deliveries(endpoint_id)
    assert delivery.state == "delivered" and delivery.msg_id == job.msg_id
    assert [(a.number, a.outcome) for a in attempts] == [(1, "interrupted"), (2, "success")]
    assert hooks.msg_ids("/a") == [job.msg_id]
    assert all(h.verified for h in hooks.hits)


def test_a_backlog_does_not_take_every_slot(bench: Bench, hooks: HookReceiver) -> None:
    busy_id, _ = bench.endpoint(hooks.url("/busy"), ["claim.updated"])
    for n in range(12):
        bench.emit("claim.updated", {"n": n})
    dispatch_outbox(bench.database, bench.settings)
    quiet_id, _ = bench.endpoint(hooks.url("/quiet"), ["claim.created"])
    for n in range(3):
        bench.emit("claim.created", {"n": n})
    dispatch_outbox(bench.database, bench.settings)

    jobs = claim_due(bench.database, bench.settings, limit=8, per_endpoint=4)
    assert Counter(j.endpoint_id for j in jobs) == {busy_id: 4, quiet_id: 3}
    # The process already has those in flight: no more for the busy endpoint.
    assert claim_due(bench.database, bench.settings, limit=8, busy={busy_id: 4}, per_endpoint=4) == []


def test_concurrent_claims_never_share_a_delivery(bench: Bench, hooks: HookReceiver) -> None:
    for path in ("/a", "/b", "/c"):
        bench.endpoint(hooks.url(path))
    for n in range(20):
        bench.emit("claim.updated", {"n": n})
    dispatch_outbox(bench.database, bench.settings)
    databases = [make_database(bench.settings) for _ in range(4)]
    claimed: list[list[int]] = [[] for _ in databases]
    barrier = threading.Barrier(len(databases))

    def claimer(i: int) -> None:
        barrier.wait()
        while jobs := claim_due(databases[i], bench.settings, limit=3, per_endpoint=100):
            claimed[i].extend(j.delivery_id for j in jobs)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(databases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for database in databases:
        database.dispose()
    every = [d for part in claimed for d in part]
    assert len(every) == 60 and len(set(every)) == 60


def test_two_workers_never_send_one_attempt_twice(bench: Bench, hooks: HookReceiver) -> None:
    paths = ["/w1", "/w2", "/w3", "/w4"]
    endpoint_ids = []
    for path in paths:
        endpoint_id, secret = bench.endpoint(hooks.url(path))
        endpoint_ids.append(endpoint_id)
        hooks.trust(path, secret)
        hooks.answer(path, hold=0.02)
    for n in range(15):
        bench.emit("claim.updated", {"n": n})
    databases = [make_database(bench.settings) for _ in range(2)]
    runners = [
        BackgroundWorker(Worker(db, bench.settings, timers=False, wake_on_commit=False)).start() for db in databases
    ]
    try:
        _wait_for(lambda: _pending(bench) == 0 and len(hooks.hits) >= 60, 20, "every delivery")
    finally:
        for runner in runners:
            runner.stop(10)
        for database in databases:
            database.dispose()
    assert not any(r.alive for r in runners)
    assert hooks.overlaps == []
    assert len(set(hooks.msg_ids())) == 60
    assert all(h.verified for h in hooks.hits)
    # Each recorded attempt reached the receiver at most once. A second send of a message is only
    # ever a new attempt after a failed one (on a starved machine the 2 s timeout can expire after
    # the receiver got the request): never one attempt sent twice, never a retry of a success.
    for path, endpoint_id in zip(paths, endpoint_ids, strict=True):
        rows = bench.deliveries(endpoint_id)
        assert [delivery.state for delivery, _ in rows] == ["delivered"] * 15
        attempts = [sorted(tried, key=lambda a: a.number) for _, tried in rows]
        assert 15 <= len(hooks.at(path)) <= sum(len(tried) for tried in attempts)
        assert all(a.error for tried in attempts for a in tried[:-1])
        assert all(tried[-1].error is None for tried in attempts)


@pytest.mark.slow
def test_a_sigkilled_worker_loses_nothing(bench: Bench, hooks: HookReceiver, db_url: str, tmp_path: Path) -> None:
    endpoint_id, secret = bench.endpoint(hooks.url("/slow"))
    hooks.trust("/slow", secret)
    hooks.answer("/slow", hold=1.0)  # long enough that the kill always finds sends on the wire
    for n in range(24):
        bench.emit("claim.updated", {"n": n})

    proc = _start_worker(db_url, tmp_path)
    try:
        _wait_for(lambda: len(hooks.hits) >= 6 or proc.poll() is not None, 20, "the worker to start sending")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)  # mid-burst: up to 16 requests are on the wire right now
    finally:
        proc.kill()
        proc.wait(10)

    hooks.answer("/slow")  # the receiver recovers; the leases of the dead worker are still held
    clock.advance(bench.settings.webhook_timeout + 16)
    for _ in range(3):
        bench.run()
        if _pending(bench) == 0:
            break

    rows = bench.deliveries(endpoint_id)
    assert len(rows) == 24 and {d.state for d, _ in rows} == {"delivered"}
    received = Counter(hooks.msg_ids("/slow"))
    assert set(received) == {d.msg_id for d, _ in rows}  # nothing lost
    interrupted = {d.msg_id for d, attempts in rows if any(a.outcome == "interrupted" for a in attempts)}
    assert interrupted, "the kill should have caught attempts on the wire"
    assert {m for m, n in received.items() if n > 1} <= interrupted  # duplicates only where a send was cut
    # A send cut between its headers and its body reaches the receiver as a request with no body: it
    # fails verification, as it should, and the delivery was sent again. Every complete one verifies.
    complete = [h for h in hooks.hits if len(h.body) == int(h.headers.get("content-length", "-1"))]
    assert {h.msg_id for h in complete} == {d.msg_id for d, _ in rows}
    assert all(h.verified for h in complete), [h.error for h in complete if not h.verified]
    assert all(h.msg_id in interrupted for h in hooks.hits if h not in complete)


@pytest.mark.slow
def test_the_worker_command_stops_on_sigterm(bench: Bench, hooks: HookReceiver, db_url: str, tmp_path: Path) -> None:
    _, secret = bench.endpoint(hooks.url("/t"))
    hooks.trust("/t", secret)
    bench.emit("claim.updated")
    proc = _start_worker(db_url, tmp_path)
    try:
        _wait_for(lambda: len(hooks.hits) == 1 or proc.poll() is not None, 20, "a delivery")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert hooks.hits[0].verified
    assert _pending(bench) == 0


def test_the_api_process_runs_the_worker_in_its_lifespan(
    settings: Any, database: Any, desk: Any, hooks: HookReceiver
) -> None:
    application = create_app(settings, database, start_worker=True)
    application.state.owns_database = False
    admin, editor = desk.person("admin"), desk.person("editor")
    with TestClient(application) as client:
        r = client.post(
            "/api/v1/webhooks", json={"url": hooks.url("/live"), "events": ["claim.created"]}, headers=admin.headers
        )
        hooks.trust("/live", r.json()["secret"])
        r = client.post("/api/v1/claims", json={"text": "Turnout was 98 percent"}, headers=editor.headers)
        assert r.status_code == 201
        # The in-process worker delivers it (woken by the commit, well before the poll interval).
        _wait_for(lambda: len(hooks.hits) == 1, 20, "the in-process worker")
        counted = 'claimdesk_webhook_attempts_total{outcome="success"} 1.0'
        _wait_for(lambda: counted in client.get("/metrics").text, 20, "the attempt to be counted")
    assert hooks.hits[0].verified and hooks.hits[0].json()["data"]["claim"]["id"] == r.json()["id"]
    assert not any(t.name == "claimdesk-worker" for t in threading.enumerate())


def test_serve_leaves_the_worker_out_when_asked(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import uvicorn

    from app import cli

    calls: list[dict[str, Any]] = []
    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    monkeypatch.setattr(cli, "cmd_migrate", lambda args: 0)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))

    assert cli.main(["serve"]) == 0
    assert os.environ[IN_PROCESS_ENV] == "1"
    assert cli.main(["serve", "--no-worker"]) == 0
    assert os.environ[IN_PROCESS_ENV] == "0"
    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    assert cli.main(["serve", "--workers", "3"]) == 0
    assert os.environ[IN_PROCESS_ENV] == "0"
    assert "claimdesk worker" in capsys.readouterr().out
    assert [c["workers"] for c in calls] == [1, 1, 3]
    assert cli.build_parser().parse_args(["worker"]).func is cli.cmd_worker


def test_the_worker_takes_its_limits_from_the_settings(bench: Bench, make_settings: Callable[..., Any]) -> None:
    worker = Worker(bench.database, make_settings(webhook_concurrency=7, webhook_concurrency_per_endpoint=3))
    assert (worker.concurrency, worker.per_endpoint) == (7, 3)
    # The defaults: 64 at once, 16 to one endpoint.
    default = Worker(bench.database, make_settings())
    assert (default.concurrency, default.per_endpoint) == (64, 16)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        make_settings(webhook_concurrency_per_endpoint=0)
