"""list_1m: listing by state and full-text search over 1,000,000 claims, under wrk.

1. ``claimdesk migrate``, then 1,000,000 claims (100,000 with --quick) written straight into the
   claims table, not through the API: SQLite with executemany in 50,000-row transactions on one
   sqlite3 connection; PostgreSQL with COPY. The full-text index ends up as the migration builds
   it: on SQLite the insert trigger that feeds ``claims_fts`` is set aside during the load and the
   index is then filled with FTS5's 'rebuild' (what the migration itself runs), and the trigger is
   put back exactly as it was (its SQL is read from sqlite_master); on PostgreSQL the generated
   ``search`` column is computed by the server on COPY, the GIN index (and the other indexes) are
   dropped for the load and re-created from their own definitions (pg_indexes), then ANALYZE.
   Texts are 8-12 words drawn from a 3,000-word pseudo vocabulary (each word in about 0.3 % of the
   claims); states: published 50 %, submitted 20 %, queued 10 %, rejected 10 %, in_progress 5 %,
   in_review 5 %.
2. Loads (wrk, 2 threads, 16 connections, a few seconds each, after a warm-up):
   ``GET /api/v1/claims?state=queued&limit=50`` and ``GET /api/v1/claims?q=WORD&limit=50`` over 60
   queries (40 single words, 20 pairs) taken in turn; then each with one connection alone.
3. Checks: every answer 2xx; the queued page holds 50 queued claims; a sample search's results all
   contain the word (checked in the database).
Targets (performance brief): p95 <= 30 ms for the state list, <= 100 ms for full-text search.
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from bench.harness import Desk, Metric, MiB, RssSampler, expect, log, sql_engine
from bench.wrkload import WrkResult, run_wrk

NAME = "list_1m"
DESCRIPTION = "GET /claims?state=queued and full-text q= over 1,000,000 claims"
TARGET_LIST_P95_MS = 30
TARGET_SEARCH_P95_MS = 100
BATCH = 50_000
STATES = (
    ("published", 0.50), ("submitted", 0.20), ("queued", 0.10), ("rejected", 0.10), ("in_progress", 0.05),
    ("in_review", 0.05),
)  # fmt: skip
PRIORITIES = (("urgent", 0), ("high", 1), ("normal", 2), ("low", 3))
COLUMNS = (
    "text", "claimant", "tags", "priority", "priority_rank", "due_sort", "public", "state", "review_round",
    "version", "created_at", "updated_at",
)  # fmt: skip
NO_DEADLINE_TEXT = "9999-12-31 00:00:00.000000"


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    """Pronounceable pseudo words of 5-9 letters, all distinct."""
    consonants, vowels = "bcdfghjklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        n = rng.randint(5, 9)
        words.add("".join(rng.choice(consonants if i % 2 == 0 else vowels) for i in range(n)))
    return sorted(words)


def _rows(count: int, rng: random.Random, vocab: list[str], start: datetime) -> Any:
    names = [s for s, _ in STATES]
    weights = [w for _, w in STATES]
    claimants = [f"Speaker {i}" for i in range(500)]
    for i in range(count):
        priority, rank = PRIORITIES[rng.randrange(4)]
        created = start + timedelta(seconds=i * 2)
        yield (
            " ".join(rng.choices(vocab, k=rng.randint(8, 12))),
            rng.choice(claimants),
            "[]",
            priority,
            rank,
            rng.choices(names, weights)[0],
            created,
        )


def _seed_sqlite(path: str, count: int, rng: random.Random, vocab: list[str]) -> float:
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a bulk load; the app sets its own pragmas
        conn.execute("PRAGMA cache_size=-262144")
        (trigger_sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'claims_fts_ai'"
        ).fetchone()
        conn.execute("DROP TRIGGER claims_fts_ai")
        sql = f"INSERT INTO claims ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608  # fixed names
        batch: list[tuple[Any, ...]] = []
        start = datetime.now(UTC) - timedelta(days=60)
        for text, claimant, tags, priority, rank, state, created in _rows(count, rng, vocab, start):
            stamp = created.strftime("%Y-%m-%d %H:%M:%S.%f")
            batch.append((text, claimant, tags, priority, rank, NO_DEADLINE_TEXT, 0, state, 0, 1, stamp, stamp))
            if len(batch) == BATCH:
                conn.execute("BEGIN")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
                batch.clear()
        if batch:
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
        log(f"{NAME}: rows written in {time.perf_counter() - started:.1f} s; rebuilding claims_fts")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO claims_fts(claims_fts) VALUES ('rebuild')")
        conn.execute(trigger_sql)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


def _seed_postgres(url: str, count: int, rng: random.Random, vocab: list[str]) -> float:
    import psycopg

    from bench.harness import _libpq_url

    started = time.perf_counter()
    with psycopg.connect(_libpq_url(url)) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'claims' AND indexname <> 'pk_claims'"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')  # type: ignore[arg-type]  # names from the catalogue
        start = datetime.now(UTC) - timedelta(days=60)
        with conn.cursor().copy(f"COPY claims ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[arg-type]
            for text, claimant, tags, priority, rank, state, created in _rows(count, rng, vocab, start):
                copy.write_row(
                    (text, claimant, tags, priority, rank, datetime(9999, 12, 31, tzinfo=UTC), False, state, 0, 1,
                     created, created)
                )  # fmt: skip
        conn.commit()
        log(f"{NAME}: rows copied in {time.perf_counter() - started:.1f} s; re-creating {len(indexes)} indexes")
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.commit()
    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE claims")
    return time.perf_counter() - started


def seed(desk: Desk, count: int, rng: random.Random, vocab: list[str]) -> float:
    if desk.kind == "sqlite":
        return _seed_sqlite(desk.database_url.removeprefix("sqlite:///"), count, rng, vocab)
    return _seed_postgres(desk.database_url, count, rng, vocab)


def _check_search(desk: Desk, admin: httpx.Client, word: str) -> tuple[bool, int]:
    """Every claim the API returns for ``word`` contains it (case-insensitively)."""
    import sqlalchemy as sa

    items = expect(admin.get("/api/v1/claims", params={"q": word, "limit": 50}), 200)["items"]
    ids = [c["id"] for c in items]
    if not ids:
        return False, 0
    engine = sql_engine(desk.database_url)
    try:
        with engine.connect() as conn:
            texts = [
                r[0]
                for r in conn.execute(
                    sa.text("SELECT text FROM claims WHERE id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                    {"ids": ids},
                )
            ]
    finally:
        engine.dispose()
    return all(word in t.lower() for t in texts) and len(texts) == len(ids), len(ids)


def run(desk: Desk, *, quick: bool) -> tuple[list[Metric], dict[str, Any]]:
    count = 100_000 if quick else 1_000_000
    seconds = 3.0 if quick else 6.0
    rng = random.Random(20261127)
    vocab = vocabulary(rng)
    desk.migrate()
    seed_s = seed(desk, count, rng, vocab)
    log(f"{NAME}: {count:,} claims seeded in {seed_s:.1f} s")
    admin_key = desk.create_user("admin@bench.test", "admin")
    picks = rng.sample(vocab, 80)
    queries = picks[:40] + [f"{a} {b}" for a, b in zip(picks[40:60], picks[60:80], strict=True)]
    search_paths = [f"/api/v1/claims?q={quote(q)}&limit=50" for q in queries]
    list_path = "/api/v1/claims?state=queued&limit=50"
    auth = f"Bearer {admin_key}"
    loads: dict[str, WrkResult] = {}
    with desk.serving(), desk.client(admin_key) as admin:
        page = expect(admin.get(list_path), 200)["items"]
        page_ok = len(page) == 50 and all(c["state"] == "queued" for c in page)
        search_ok, search_hits = _check_search(desk, admin, queries[0])
        with RssSampler(desk.pid, interval=0.05) as rss:
            for label, paths, conns, threads in (
                ("state=queued, 16 connections", [list_path], 16, 2),
                ("q=, 16 connections", search_paths, 16, 2),
                ("state=queued, one connection", [list_path], 1, 1),
                ("q=, one connection", search_paths, 1, 1),
            ):
                run_wrk(desk.base_url, paths, seconds=1, auth=auth, connections=conns, threads=threads)
                r = run_wrk(
                    desk.base_url, paths, seconds=seconds, auth=auth, connections=conns, threads=threads,
                    server_pid=desk.pid,
                )  # fmt: skip
                log(f"{NAME}: {label}: {r.rate:,.0f} req/s, p95 {r.latency_ms['p95']:.1f} ms")
                loads[label] = r
    metrics: list[Metric] = [Metric("claims seeded", count), Metric("seeding time", round(seed_s, 1), "s")]
    for label, r in loads.items():
        target = None
        if label.endswith("16 connections"):
            target = f"<= {TARGET_LIST_P95_MS if label.startswith('state') else TARGET_SEARCH_P95_MS}"
        metrics += [
            Metric(f"{label}: throughput", round(r.rate, 1), "req/s"),
            Metric(f"{label}: p50", r.latency_ms["p50"], "ms"),
            Metric(f"{label}: p95", r.latency_ms["p95"], "ms", target),
            Metric(f"{label}: server CPU per request", r.cpu_ms_per_request, "ms"),
        ]
    failed = sum(r.failed for r in loads.values())
    metrics += [
        Metric("failed requests (non-2xx, socket errors)", failed, check=failed == 0),
        Metric("queued page: 50 claims, all queued", "yes" if page_ok else "NO", check=page_ok),
        Metric(f"search results contain the word ({search_hits} checked)", "yes" if search_ok else "NO",
               check=search_ok),
        Metric("server peak RSS", round(rss.peak / MiB, 1), "MiB", "<= 200"),
    ]  # fmt: skip
    details = {
        "claims": count,
        "seed_seconds": round(seed_s, 1),
        "queries": queries,
        "loads": {label: r.to_json() for label, r in loads.items()},
    }
    return metrics, details
