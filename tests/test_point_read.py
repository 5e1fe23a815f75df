"""Database.point_read: in the calling thread on a SQLite file, in the thread pool elsewhere; a fresh
snapshot every call; one connection per event-loop thread."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.auth.models import User
from app.db import Database


def _count_and_thread(session: Session) -> tuple[int, int]:
    count = session.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
    return int(count), threading.get_ident()


def _add_user(database: Database, email: str) -> None:
    with database.transaction() as session:
        session.add(User(email=email, name="x", role="viewer"))


def test_point_reads_run_inline_only_on_a_sqlite_file_and_see_every_commit(database: Database) -> None:
    async def read() -> tuple[int, int, int]:
        count, thread = await database.point_read(_count_and_thread)
        return count, thread, threading.get_ident()

    before, reader, loop_thread = asyncio.run(read())
    assert (reader == loop_thread) is (database.dialect == "sqlite")
    _add_user(database, "one@example.org")
    # The same loop thread keeps its connection, and each read starts a new snapshot.
    after, _, _ = asyncio.run(read())
    assert after == before + 1


def test_each_loop_thread_gets_its_own_connection_and_dispose_closes_them(database: Database) -> None:
    if not database.reads_inline:
        return  # PostgreSQL: nothing is held; covered by the test above
    seen: list[int] = []

    def in_a_loop() -> None:
        seen.append(asyncio.run(database.point_read(_count_and_thread))[0])

    threads = [threading.Thread(target=in_a_loop) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 3
    held = list(database._loop_connections.values())
    assert len(held) == 3 and len({id(c) for c in held}) == 3
    database.dispose()
    assert all(c.closed for c in held)
    # Usable again afterwards (a fresh connection is opened).
    assert asyncio.run(database.point_read(_count_and_thread))[0] == seen[0]


def test_a_failing_read_leaves_the_connection_usable(database: Database) -> None:
    def boom(session: Session) -> None:
        session.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
        raise LookupError("not found")

    async def go() -> int:
        with pytest.raises(LookupError):
            await database.point_read(boom)
        return (await database.point_read(_count_and_thread))[0]

    users = asyncio.run(database.point_read(_count_and_thread))[0]
    assert asyncio.run(go()) == users
