"""queue_next: 32 checkers taking work from a queue of 100,000 claims at once.

1. ``claimdesk migrate``, then 100,000 claims in state ``queued`` are inserted straight into the
   claims table with executemany (5,000 rows a statement), not through the API. Priorities are
   urgent 2 % / high 18 % / normal 60 % / low 20 %; half have a due date (from a day overdue to two
   weeks ahead); creation times spread over the last 30 days. PostgreSQL gets an ANALYZE afterwards,
   as autovacuum would give it shortly after such a load.
2. One admin from ``claimdesk user create``; 32 checkers and their API keys through the API.
3. First one checker alone makes 100 calls (50 with --quick): the uncontended latency. Then
   32 asyncio loops, one keep-alive connection and one checker each, call POST /api/v1/queue/next
   until 3,000 calls are done between them (600 with --quick), or 60 s have passed (20 s with
   --quick): the loops then stop after their current call. Every call's latency is recorded.
4. Checks (over both phases): every call answered 200; no claim id was handed out twice; each answer names its caller as
   assignee; in the database exactly the handed-out claims are in_progress, each assigned to the
   caller that got it; and together they are the first N claims in queue order.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import (
    Desk,
    Metric,
    MiB,
    RssSampler,
    create_users_via_api,
    latency_summary_ms,
    log,
    pg_sessions,
    sql_engine,
)
from bench.rawhttp import Connection

NAME = "queue_next"
DESCRIPTION = "POST /queue/next, 32 concurrent checkers, 100,000 queued claims"

CHECKERS = 32
SEED_BATCH = 5000
TARGET_P99_MS = 25
PRIORITIES = (("urgent", 0, 0.02), ("high", 1, 0.18), ("normal", 2, 0.60), ("low", 3, 0.20))
WORDS = [
    "minister", "unemployment", "fell", "rose", "percent", "flood", "vaccine", "border", "budget", "school",
    "hospital", "election", "turnout", "crime", "rate", "record", "lowest", "highest", "since", "decade",
    "million", "billion", "tax", "wages", "river", "bridge",
]  # fmt: skip
from app.claims.models import NO_DEADLINE  # noqa: E402

INSERT_SQLITE = """
INSERT INTO claims (text, tags, priority, priority_rank, due_at, due_sort, public, state, review_round, version,
                    created_at, updated_at)
VALUES (:text, :tags, :priority, :priority_rank, :due_at, :due_sort, :public, 'queued', 0, 1, :created_at,
        :created_at)
"""
# PostgreSQL's JSON column wants the text cast; the rest is the same statement.
INSERT_POSTGRES = INSERT_SQLITE.replace(":tags,", "CAST(:tags AS JSON),")


def _timestamp(value: datetime, sqlite: bool) -> Any:
    # SQLite keeps UTC datetimes as naive text in SQLAlchemy's format; PostgreSQL takes timestamptz.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else value


def seed_queue(url: str, count: int, rng: random.Random) -> float:
    """Insert ``count`` queued claims; return the seconds it took."""
    import sqlalchemy as sa

    sqlite = url.startswith("sqlite")
    stmt = sa.text(INSERT_SQLITE if sqlite else INSERT_POSTGRES)
    names = [p[0] for p in PRIORITIES]
    ranks = {p[0]: p[1] for p in PRIORITIES}
    weights = [p[2] for p in PRIORITIES]
    now = datetime.now(UTC)
    engine = sql_engine(url)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            for first in range(0, count, SEED_BATCH):
                rows = []
                for i in range(first, min(first + SEED_BATCH, count)):
                    priority = rng.choices(names, weights)[0]
                    due = now + timedelta(hours=rng.uniform(-24, 14 * 24)) if rng.random() < 0.5 else None
                    created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
                    rows.append(
                        {
                            "text": f"Seeded claim {i}: " + " ".join(rng.choices(WORDS, k=8)),
                            "tags": "[]",
                            "priority": priority,
                            "priority_rank": ranks[priority],
                            "due_at": _timestamp(due, sqlite) if due else None,
                            # what the service keeps beside due_at: no deadline sorts last
                            "due_sort": _timestamp(due or NO_DEADLINE, sqlite),
                            "public": False,
                            "created_at": _timestamp(created, sqlite),
                        }
                    )
                conn.execute(stmt, rows)
            if not sqlite:
                conn.execute(sa.text("ANALYZE claims"))
    finally:
        engine.dispose()
    return time.perf_counter() - started


async def _take_one(conn: Connection, user_id: int) -> dict[str, Any]:
    """One POST /queue/next, timed; the record names the caller and what came back."""
    t0 = time.perf_counter()
    response = await conn.request("POST", "/api/v1/queue/next")
    elapsed = time.perf_counter() - t0
    record: dict[str, Any] = {"caller": user_id, "seconds": elapsed, "status": response.status}
    if response.status == 200:
        body = json.loads(response.body)
        record["claim_id"] = body["id"]
        record["assignee_id"] = body["assignee_id"]
        record["state"] = body["state"]
    else:
        record["error"] = response.body[:300].decode("utf-8", "replace")
    return record


async def _one_caller(port: int, checker: tuple[int, str], calls: int) -> list[dict[str, Any]]:
    """The same endpoint with nobody else calling: the latency concurrency is compared against."""
    user_id, key = checker
    conn = Connection("127.0.0.1", port, default_headers={"authorization": f"Bearer {key}"})
    try:
        await conn.request("GET", "/api/v1/me")
        return [await _take_one(conn, user_id) for _ in range(calls)]
    finally:
        await conn.close()


async def _take_work(
    port: int, checkers: list[tuple[int, str]], total: int, max_seconds: float
) -> tuple[list[dict[str, Any]], float]:
    """Run the callers; return one record per call and the wall time of the timed phase. Callers
    stop early (between calls) once ``max_seconds`` have passed."""
    share = [total // len(checkers) + (1 if i < total % len(checkers) else 0) for i in range(len(checkers))]
    records: list[dict[str, Any]] = []
    ready = asyncio.Barrier(len(checkers) + 1)
    go = asyncio.Event()

    async def caller(index: int, user_id: int, key: str, calls: int) -> None:
        conn = Connection("127.0.0.1", port, default_headers={"authorization": f"Bearer {key}"})
        try:
            warm = await conn.request("GET", "/api/v1/me")  # connection open, key looked up once
            if warm.status != 200:
                raise RuntimeError(f"/me -> {warm.status}: {warm.body[:200]!r}")
            await ready.wait()
            await go.wait()
            deadline = time.perf_counter() + max_seconds
            for _ in range(calls):
                if time.perf_counter() > deadline:
                    break
                records.append(await _take_one(conn, user_id))
        finally:
            await conn.close()

    tasks = [asyncio.create_task(caller(i, uid, key, share[i])) for i, (uid, key) in enumerate(checkers)]
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED, timeout=120)
    if waiter not in done:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
        raise RuntimeError(f"callers did not get ready: {failed[:1] or 'timeout'}")
    started = time.perf_counter()
    go.set()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
    finally:
        for task in tasks:
            task.cancel()
    return records, time.perf_counter() - started


def _check_database(url: str, handed: dict[int, int]) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sql_engine(url)
    try:
        with engine.connect() as conn:
            in_progress = {
                row.id: row.assignee_id
                for row in conn.execute(sa.text("SELECT id, assignee_id FROM claims WHERE state = 'in_progress'"))
            }
            head = [
                row.id
                for row in conn.execute(
                    sa.text("SELECT id FROM claims ORDER BY priority_rank, due_sort, created_at, id LIMIT :n"),
                    {"n": len(handed)},
                )
            ]
    finally:
        engine.dispose()
    mismatched = sum(1 for cid, uid in handed.items() if in_progress.get(cid) != uid)
    return {
        "in_progress": len(in_progress),
        "not_handed_but_in_progress": len(set(in_progress) - set(handed)),
        "assignee_mismatches": mismatched,
        "queue_order_kept": set(head) == set(handed),
    }


def run(desk: Desk, *, quick: bool) -> tuple[list[Metric], dict[str, Any]]:
    queued = 10_000 if quick else 100_000
    total = 600 if quick else 3000
    max_seconds = 20.0 if quick else 60.0
    solo_calls = 50 if quick else 100
    rng = random.Random(20261127)

    desk.migrate()
    seed_s = seed_queue(desk.database_url, queued, rng)
    log(f"{NAME}: seeded {queued:,} queued claims in {seed_s:.1f} s")
    admin_key = desk.create_user("admin@bench.test", "admin")

    with desk.serving(), desk.client(admin_key) as admin:
        checkers = create_users_via_api(admin, "checker", CHECKERS, "checker")
        time.sleep(1.0)
        solo = asyncio.run(_one_caller(desk.port or 0, checkers[0], solo_calls))
        sessions_before = pg_sessions(desk.database_url)
        with RssSampler(desk.pid, interval=0.05) as rss:
            records, wall = asyncio.run(_take_work(desk.port or 0, checkers, total, max_seconds))
        peak_rss = rss.peak
        sessions_after = pg_sessions(desk.database_url)

    solo_latency = latency_summary_ms([r["seconds"] for r in solo])
    everything = solo + records  # the solo hand-outs take part in the checks too
    ok = [r for r in everything if r["status"] == 200]
    errors = Counter(r["status"] for r in everything if r["status"] != 200)
    ids = [r["claim_id"] for r in ok]
    doubles = sum(n - 1 for n in Counter(ids).values() if n > 1)
    wrong_answer = sum(1 for r in ok if r["assignee_id"] != r["caller"] or r["state"] != "in_progress")
    handed = {r["claim_id"]: r["caller"] for r in ok}
    db = _check_database(desk.database_url, handed)
    latency = latency_summary_ms([r["seconds"] for r in records])
    rate = len(records) / wall if wall else float("nan")
    log(f"{NAME}: {len(records)} calls in {wall:.1f} s, p99 {latency['p99']:.1f} ms")

    db_consistent = db["not_handed_but_in_progress"] == 0 and db["assignee_mismatches"] == 0
    metrics = [
        Metric(f"one caller alone: p50 of {len(solo)} calls", solo_latency["p50"], "ms"),
        Metric(
            "one caller p50 / bare FastAPI `def` GET p50",
            round(solo_latency["p50"] / desk.floor_p50_ms, 1) if desk.floor_p50_ms else None,
            "x",
        ),
        Metric(f"calls done (of {total:,}, cap {max_seconds:.0f} s)", len(records)),
        Metric("p50", latency["p50"], "ms"),
        Metric("p50 / one caller's p50", round(latency["p50"] / solo_latency["p50"], 1), "x"),
        Metric("p95", latency["p95"], "ms"),
        Metric("p99", latency["p99"], "ms", f"<= {TARGET_P99_MS}"),
        Metric("max", latency["max"], "ms"),
        Metric("throughput", round(rate, 1), "req/s"),
        Metric("server CPU per call", round(rss.cpu_seconds / max(len(records), 1) * 1000, 2), "ms"),
        Metric("server CPU use during the load", round(rss.cpu_seconds / wall, 2) if wall else None, "cores"),
        Metric("non-200 answers", sum(errors.values()), check=not errors),
        Metric("double hand-outs", doubles, check=doubles == 0),
        Metric("answers naming another assignee", wrong_answer, check=wrong_answer == 0),
        Metric(
            "DB: in_progress rows = hand-outs, assignee = caller", "yes" if db_consistent else "NO", check=db_consistent
        ),
        Metric("hand-outs = first N in queue order", "yes" if db["queue_order_kept"] else "no"),
        Metric("server peak RSS", round(peak_rss / MiB, 1), "MiB", "<= 200"),
    ]
    if sessions_before is not None and sessions_after is not None:
        # Each new session is a connect + SCRAM handshake: a pool smaller than the concurrency churns.
        metrics.append(Metric("PostgreSQL connections opened during the load", sessions_after - sessions_before - 1))
    details = {
        "queued": queued,
        "calls_planned": total,
        "time_cap_seconds": max_seconds,
        "stopped_by_time_cap": len(records) < total,
        "seed_seconds": round(seed_s, 1),
        "wall_seconds": round(wall, 3),
        "latency_ms": latency,
        "errors": {str(k): v for k, v in errors.items()},
        "error_sample": [r.get("error") for r in everything if r["status"] != 200][:3],
        "one_caller_latency_ms": solo_latency,
        "database": db,
    }
    return metrics, details
