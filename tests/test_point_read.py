"""Database.point_read: in the calling (event-loop) thread, on a SQLite file's blocking connection or
on PostgreSQL's asyncio connections in autocommit; a fresh snapshot every call; connections of a
loop's own, closed when it ends."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.auth.models import User
from app.claims.router import router as claims_router
from app.db import COMMITS, Database
from app.queue.router import router as queue_router
from tests.conftest import serve_in_thread


def _count_and_thread(conn: sa.Connection) -> tuple[int, int]:
    count = conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
    return int(count), threading.get_ident()


def _add_user(database: Database, email: str) -> None:
    with database.transaction() as session:
        session.add(User(email=email, name="x", role="viewer"))


def test_point_reads_run_in_the_loop_thread_and_see_every_commit(database: Database) -> None:
    async def read() -> tuple[int, int, int]:
        count, thread = await database.point_read(_count_and_thread)
        return count, thread, threading.get_ident()

    before, reader, loop_thread = asyncio.run(read())
    assert reader == loop_thread
    _add_user(database, "one@example.org")
    # The same loop thread keeps its connection, and each read starts a new snapshot.
    after, _, _ = asyncio.run(read())
    assert after == before + 1


def test_each_loop_thread_gets_its_own_connection_and_dispose_closes_them(database: Database) -> None:
    if not database.reads_inline:
        pytest.skip("the SQLite file's loop connection (PostgreSQL's are tested below)")
    seen: list[int] = []

    def in_a_loop() -> None:
        seen.append(asyncio.run(database.point_read(_count_and_thread))[0])

    gate = threading.Barrier(3)

    def in_a_live_loop() -> None:
        in_a_loop()
        gate.wait(10)  # all three threads are alive together

    threads = [threading.Thread(target=in_a_live_loop) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 3
    held = [conn for _, conn in database._loop_connections.values()]
    assert len(held) == 3 and len({id(c) for c in held}) == 3
    # None of them came out of the read pool, which the thread pool may need whole.
    assert database.read_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # The next loop thread to connect closes the connections of threads that have ended.
    assert asyncio.run(database.point_read(_count_and_thread))[0] == seen[0]
    assert all(c.closed for c in held)
    [(_, mine)] = database._loop_connections.values()
    database.dispose()
    assert mine.closed
    # Usable again afterwards (a fresh connection is opened).
    assert asyncio.run(database.point_read(_count_and_thread))[0] == seen[0]


def _postgres_only(database: Database) -> None:
    if not database.is_postgres:
        pytest.skip("PostgreSQL's asyncio point reads")


def test_postgres_point_reads_wait_without_blocking_the_loop(database: Database) -> None:
    _postgres_only(database)

    def slow(conn: sa.Connection) -> int:
        conn.execute(sa.text("SELECT pg_sleep(0.3)"))
        return threading.get_ident()

    async def go() -> tuple[int, int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0)
        reader = await database.point_read(slow)
        ticker.cancel()
        return ticks, reader, threading.get_ident()

    ticks, reader, loop_thread = asyncio.run(go())
    assert reader == loop_thread  # not in the thread pool ...
    assert ticks >= 10  # ... and the loop ran on while the server slept


def test_postgres_point_reads_autocommit_and_see_each_commit(database: Database) -> None:
    _postgres_only(database)

    def status(conn: sa.Connection) -> tuple[int, str]:
        count = int(conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one())
        driver = conn.connection.driver_connection
        assert driver is not None
        return count, driver.info.transaction_status.name

    async def go() -> tuple[tuple[int, str], tuple[int, str]]:
        first = await database.point_read(status)
        _add_user(database, "seen@example.org")  # committed by another connection meanwhile
        return first, await database.point_read(status)

    (before, state), (after, _) = asyncio.run(go())
    assert state == "IDLE"  # no transaction left open: no BEGIN or ROLLBACK round trips
    assert after == before + 1


def test_postgres_point_read_connections_close_when_their_loop_ends(database: Database) -> None:
    _postgres_only(database)
    engines: list[Any] = []

    raw: list[Any] = []

    async def go() -> None:
        await asyncio.gather(*(database.point_read(_count_and_thread) for _ in range(3)))
        [(engine, _)] = database._loop_async_engines.values()
        engines.append(engine)
        async with engine.connect() as conn:  # one of those kept for the loop's next reads
            raw.append((await conn.get_raw_connection()).driver_connection)
        assert not raw[-1].closed

    asyncio.run(go())
    asyncio.run(go())
    first, second = engines
    assert first is not second  # each loop has its own (connections cannot cross loops)
    assert database._loop_async_engines == {}
    assert all(conn.closed for conn in raw)  # closed as their loop shut down


def test_a_failing_read_leaves_the_connection_usable(database: Database) -> None:
    def boom(conn: sa.Connection) -> None:
        conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
        raise LookupError("not found")

    async def go() -> int:
        with pytest.raises(LookupError):
            await database.point_read(boom)
        return (await database.point_read(_count_and_thread))[0]

    users = asyncio.run(database.point_read(_count_and_thread))[0]
    assert asyncio.run(go()) == users


def test_sync_routes_commit_write_sessions_and_roll_back_read_sessions(client: Any, desk: Any) -> None:
    commits: list[bool] = []

    def count(session: Session) -> None:
        commits.append(bool(session.info.get(COMMITS)))

    event.listen(Session, "after_commit", count)
    try:
        editor = desk.person("editor")
        # The first use of a key records when it was used (at most once a minute): not counted here.
        assert client.get("/api/v1/me", headers=editor.headers).status_code == 200
        commits.clear()
        assert client.get("/api/v1/claims", headers=editor.headers).status_code == 200
        assert client.get("/api/v1/me", headers=editor.headers).status_code == 200
        assert commits == []  # reads are rolled back, never committed (and wake no worker)
        r = client.post(
            "/api/v1/claims", json={"text": "The dam holds 40 million cubic metres"}, headers=editor.headers
        )
        assert r.status_code == 201, r.text
        assert commits == [True]  # the write session, once, before the answer
    finally:
        event.remove(Session, "after_commit", count)


def test_an_invalidated_loop_connection_is_replaced_and_closed(database: Database) -> None:
    if not database.reads_inline:
        pytest.skip("the SQLite file's loop connection (PostgreSQL's are tested below)")

    async def go() -> None:
        first = (await database.point_read(_count_and_thread))[0]
        [(_, conn)] = database._loop_connections.values()
        conn.invalidate()
        assert (await database.point_read(_count_and_thread))[0] == first
        [(_, fresh)] = database._loop_connections.values()
        assert fresh is not conn and conn.closed and not fresh.closed

    asyncio.run(go())


@pytest.mark.parametrize("limit", [1, 3])
def test_read_only_routes_run_at_most_read_concurrency_at_once(
    app: Any, database: Database, desk: Any, limit: int
) -> None:
    """Lists run in threads under the database's read limit."""
    database.read_concurrency = limit
    editor = desk.person("editor")
    lock = threading.Lock()
    active = [0]
    peak = [0]

    def started(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM claims" not in statement:
            return
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)  # long enough for the other requests to pile up, if they may

    def ended(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM claims" in statement:
            with lock:
                active[0] -= 1

    event.listen(database.read_engine, "before_cursor_execute", started)
    event.listen(database.read_engine, "after_cursor_execute", ended)
    try:
        with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=editor.headers, timeout=30) as http:
            assert http.get("/api/v1/claims").status_code == 200  # the key is looked up and cached
            peak[0] = 0
            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: http.get("/api/v1/claims?limit=5").status_code, range(6)))
    finally:
        event.remove(database.read_engine, "before_cursor_execute", started)
        event.remove(database.read_engine, "after_cursor_execute", ended)
    assert answers == [200] * 6
    if limit == 1:
        assert peak[0] == 1
    else:
        assert 2 <= peak[0] <= limit  # the limit is what holds them back, not something else


def test_only_routes_with_a_read_session_alone_wait_for_the_read_limit() -> None:
    """Lists and searches are wrapped to wait for the read limit; writes (and routes with both kinds
    of session) stay sync endpoints in FastAPI's thread pool."""
    kinds = {
        (route.path, method): inspect.iscoroutinefunction(route.endpoint)
        for router in (claims_router, queue_router)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert kinds[("/api/v1/claims", "GET")] is True
    assert kinds[("/api/v1/queue", "GET")] is True
    assert kinds[("/api/v1/claims", "POST")] is False
    assert kinds[("/api/v1/claims:batch", "POST")] is False
    assert kinds[("/api/v1/queue/next", "POST")] is False
