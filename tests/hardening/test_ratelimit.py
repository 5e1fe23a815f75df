"""Per-key write limits (CLAIMDESK_RATE_LIMIT_WRITES): GCRA in process, RateLimit fields per
draft-ietf-httpapi-ratelimit-headers-11, 429 problem+json with Retry-After."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from app.auth.deps import Contributor, CurrentPrincipal
from app.clock import clock
from app.config import Settings
from app.ratelimit import Rate, RateLimiter, parse_rate
from tests.conftest import make_settings

LIMIT = 3  # per minute: one write comes back every 20 s
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path, rate_limit_writes=f"{LIMIT}/minute")


def _counts(database) -> tuple[int, int]:
    with database.read_session() as s:
        claims = s.execute(sa.text("SELECT count(*) FROM claims")).scalar_one()
        events = s.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
    return int(claims), int(events)


def test_budget_spent_then_429_with_fields_and_nothing_changed(client, desk, database) -> None:
    editor = desk.person("editor")
    r = client.post("/api/v1/claims", json={"text": "The bridge cost 3 million"}, headers=editor.headers)
    assert r.status_code == 201
    cid = r.json()["id"]
    assert r.headers["RateLimit-Policy"] == f'"writes";q={LIMIT};w=60'
    assert r.headers["RateLimit"] == '"writes";r=2;t=20'
    for left in (1, 0):
        r = client.patch(f"/api/v1/claims/{cid}", json={"text": f"edit {left}"}, headers=editor.headers)
        assert r.status_code == 200, r.text
        assert re.fullmatch(rf'"writes";r={left};t=\d+', r.headers["RateLimit"])
    before = _counts(database)
    version = client.get(f"/api/v1/claims/{cid}", headers=editor.headers).json()["version"]

    refused = client.patch(f"/api/v1/claims/{cid}", json={"text": "one too many"}, headers=editor.headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["status"] == 429 and body["type"].endswith("/rate-limited") and body["violated-policies"] == ["writes"]
    wait = int(refused.headers["Retry-After"])
    assert 15 <= wait <= 20  # 20 s less the time the three writes took, rounded up
    assert refused.headers["RateLimit"] == f'"writes";r=0;t={wait}'
    assert refused.headers["RateLimit-Policy"] == f'"writes";q={LIMIT};w=60'
    # A refused create too: the body is never looked at, even an invalid one.
    assert client.post("/api/v1/claims", json={"text": "more"}, headers=editor.headers).status_code == 429
    assert client.post("/api/v1/claims", json={"bogus": 1}, headers=editor.headers).status_code == 429

    # The refused writes changed nothing.
    assert _counts(database) == before
    after = client.get(f"/api/v1/claims/{cid}", headers=editor.headers).json()
    assert after["text"] == "edit 0" and after["version"] == version

    # Reads are not limited and carry no RateLimit fields.
    for _ in range(LIMIT + 2):
        r = client.get("/api/v1/claims", headers=editor.headers)
        assert r.status_code == 200 and "RateLimit" not in r.headers

    # Another key has its own budget.
    other = desk.person("editor")
    r = client.post("/api/v1/claims", json={"text": "Another desk member's claim"}, headers=other.headers)
    assert r.status_code == 201 and r.headers["RateLimit"] == '"writes";r=2;t=20'


def test_budget_refills_with_time(client, desk) -> None:
    who = desk.person("contributor")

    def write() -> httpx.Response:
        return client.post("/api/v1/claims", json={"text": "Unemployment halved"}, headers=who.headers)

    started = time.monotonic()  # the limiter runs on real time plus the clock's offset
    assert [write().status_code for _ in range(LIMIT + 1)] == [201] * LIMIT + [429]
    # 19 s after the first write, wherever the real time spent on these writes (a slow machine) went.
    clock.advance(19 - (time.monotonic() - started))
    assert write().status_code == 429  # not yet: one write returns every 20 s
    clock.advance(1.5)
    r = write()
    assert r.status_code == 201 and r.headers["RateLimit"].startswith('"writes";r=0;')
    assert write().status_code == 429
    clock.advance(60)
    assert [write().status_code for _ in range(LIMIT + 1)] == [201] * LIMIT + [429]


def test_refused_and_unauthenticated_writes_do_not_spend(client, desk) -> None:
    who = desk.person("contributor")
    for _ in range(5):
        assert client.post("/api/v1/claims", json={"text": "x"}).status_code == 401
        assert (
            client.post("/api/v1/claims", json={"text": "x"}, headers={"Authorization": "Bearer cdk_nope"}).status_code
            == 401
        )
    assert [
        client.post("/api/v1/claims", json={"text": "y"}, headers=who.headers).status_code for _ in range(LIMIT)
    ] == [201] * LIMIT
    for _ in range(10):  # hammering at 429 does not push the refill further away
        assert client.post("/api/v1/claims", json={"text": "y"}, headers=who.headers).status_code == 429
    clock.advance(20.5)
    assert client.post("/api/v1/claims", json={"text": "y"}, headers=who.headers).status_code == 201


def test_concurrent_writes_with_one_key_get_exactly_the_budget(live_url, desk) -> None:
    who = desk.person("contributor")
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def write() -> None:
        with httpx.Client(base_url=live_url, timeout=30) as http:
            start.wait(timeout=30)
            code = http.post("/api/v1/claims", json={"text": "Crime is up"}, headers=who.headers).status_code
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [201] * LIMIT + [429] * (8 - LIMIT)


@pytest.mark.parametrize("off", ["0", "", " 0 "])
def test_zero_or_empty_turns_the_limit_off(off: str, db_url: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.db import make_database
    from app.main import create_app
    from tests.conftest import Desk, _truncate_pg

    settings = make_settings(db_url, tmp_path, rate_limit_writes=off)
    database = make_database(settings)
    if database.is_postgres:
        _truncate_pg(database)
    application = create_app(settings, database, start_worker=False)
    application.state.owns_database = False
    who = Desk(database).person("contributor")
    try:
        with TestClient(application) as c:
            for _ in range(12):
                r = c.post("/api/v1/claims", json={"text": "z"}, headers=who.headers)
                assert r.status_code == 201 and "RateLimit" not in r.headers
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("600/minute", Rate(600, 60)),
        ("5/second", Rate(5, 1)),
        ("1000 / Hour", Rate(1000, 3600)),
        ("0", None),
        ("", None),
    ],
)
def test_parse_rate(text: str, expected: Rate | None) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("bad", ["600", "600/min", "10/fortnight", "-1/minute", "0/minute", "many/hour", "1.5/second"])
def test_a_malformed_limit_is_refused_at_start(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="rate_limit_writes"):
        Settings(_env_file=None, rate_limit_writes=bad)  # type: ignore[call-arg]
    env = {**os.environ, "CLAIMDESK_RATE_LIMIT_WRITES": bad, "CLAIMDESK_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "CLAIMDESK_RATE_LIMIT_WRITES" in run.stderr and "N/minute" in run.stderr


def test_gcra_arithmetic_with_an_injected_clock() -> None:
    now = [1000.0]
    limiter = RateLimiter(Rate(600, 60), now=lambda: now[0])
    decisions = [limiter.hit("k") for _ in range(601)]
    assert all(d.allowed for d in decisions[:600]) and not decisions[600].allowed
    assert decisions[0].remaining == 599 and decisions[599].remaining == 0
    assert decisions[600].retry_after == 1  # 0.1 s rounded up to whole seconds
    now[0] += 0.1
    assert limiter.hit("k").allowed and not limiter.hit("k").allowed
    now[0] += 60
    assert limiter.hit("k").remaining == 599


def test_memory_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(10, 1), now=lambda: now[0], max_keys=1000)
    for i in range(50_000):
        now[0] += 0.001  # each key is idle again 0.1 s after its one write
        assert limiter.hit(f"key:{i}").allowed
        assert len(limiter) <= 1000
    # Idle keys go well before the cap: only those written in the last 0.1 s (about 100) remain.
    assert len(limiter) <= 110
    # Forgetting an idle key changes nothing: it gets the full budget a new key would.
    assert limiter.hit("key:0").remaining == 9


def test_a_route_asking_for_the_key_twice_spends_one_write(app, client, desk) -> None:
    """A role dependency and CurrentPrincipal on one route authenticate once: one unit of budget."""

    @app.post("/api/v1/_twice")
    async def twice(first: Contributor, second: CurrentPrincipal) -> dict[str, int]:
        return {"first": first.user_id, "second": second.user_id}

    editor = desk.person("editor")
    r = client.post("/api/v1/_twice", headers=editor.headers)
    assert r.status_code == 200
    assert r.json() == {"first": editor.id, "second": editor.id}
    assert r.headers["RateLimit"] == f'"writes";r={LIMIT - 1};t=20'
