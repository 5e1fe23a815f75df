"""PostgreSQL's pool checks a connection with a round trip only after it sat idle, and replaces one
whose server side has gone."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import app.db as db_module
from app.db import Database


@pytest.fixture
def pg(database: Database) -> Database:
    if database.dialect != "postgresql":
        pytest.skip("the idle ping is PostgreSQL's")
    return database


def _backend_pid(database: Database) -> int:
    with database.read_engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _count_pings(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = database.read_engine.dialect
    real = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


def test_a_connection_used_moments_ago_is_not_pinged(pg: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = _count_pings(pg, monkeypatch)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 60.0)
    first = _backend_pid(pg)
    assert [_backend_pid(pg) for _ in range(5)] == [first] * 5
    assert pings == []
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert _backend_pid(pg) == first
    assert pings == [1]


def test_a_connection_whose_server_side_died_while_idle_is_replaced(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _backend_pid(pg)
    outside = sa.create_engine(pg.url, poolclass=NullPool)
    try:
        with outside.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one() is True
    finally:
        outside.dispose()
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    # The ping finds the dead connection; the pool drops it and the read runs on a new one.
    replacement = _backend_pid(pg)
    assert replacement != pid
    with pg.transaction() as session:
        assert session.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_a_dead_connection_found_by_a_ping_renews_the_whole_pool(pg: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two connections in the pool, both opened to the server that then goes away.
    with pg.read_engine.connect() as first, pg.read_engine.connect() as second:
        pids = [int(c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()) for c in (first, second)]
    outside = sa.create_engine(pg.url, poolclass=NullPool)
    try:
        with outside.connect() as conn:
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    finally:
        outside.dispose()
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert _backend_pid(pg) not in pids
    # No ping this time: the other dead connection must already have been dropped with the pool.
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 60.0)
    with pg.read_engine.connect() as first, pg.read_engine.connect() as second:
        again = [int(c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()) for c in (first, second)]
    assert not set(again) & set(pids)
