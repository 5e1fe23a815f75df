"""SQLite's in-process writer gate (app/db.py): held from BEGIN IMMEDIATE to the end of the
transaction, and given back on every way a transaction can end, including a connection that is
invalidated or closed mid-transaction and a BEGIN that fails."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.config import Settings
from app.db import Database, GatedConnection, WriterGate, make_database, writer_gate


@pytest.fixture
def sqlite_db(tmp_path: Path):
    path = tmp_path / "gate.db"
    database = make_database(Settings(database_url=f"sqlite:///{path}", storage=str(tmp_path / "ev")))
    with database.write_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield database, writer_gate(str(path))
    database.dispose()


def test_held_for_the_transaction_and_released_at_commit_and_rollback(sqlite_db) -> None:
    database, gate = sqlite_db
    assert not gate.locked()
    with database.transaction() as session:
        session.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
        assert gate.locked()
    assert not gate.locked()
    session = database.write_session()
    session.execute(sa.text("INSERT INTO t (v) VALUES ('b')"))
    assert gate.locked()
    session.rollback()
    assert not gate.locked()
    session.close()
    # readers never take it
    with database.read_session() as session:
        session.execute(sa.text("SELECT count(*) FROM t")).scalar_one()
        assert not gate.locked()


def test_released_when_the_connection_is_invalidated_mid_transaction(sqlite_db) -> None:
    database, gate = sqlite_db
    conn = database.write_engine.connect()
    conn.exec_driver_sql("INSERT INTO t (v) VALUES ('c')")
    assert gate.locked()
    conn.invalidate()
    assert not gate.locked()
    conn.close()
    # and the next writer goes straight in
    with database.transaction() as session:
        session.execute(sa.text("INSERT INTO t (v) VALUES ('d')"))
    with database.read_session() as session:
        assert session.execute(sa.text("SELECT v FROM t ORDER BY id")).scalars().all() == ["d"]


def test_released_when_the_pool_is_disposed_or_the_connection_closed(sqlite_db) -> None:
    database, gate = sqlite_db
    conn = database.write_engine.connect()
    conn.exec_driver_sql("INSERT INTO t (v) VALUES ('e')")
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, GatedConnection) and gate.locked()
    raw.close()  # closed under SQLAlchemy's feet, as a dying connection would be
    assert not gate.locked()
    with pytest.raises(sa.exc.DBAPIError):
        conn.exec_driver_sql("INSERT INTO t (v) VALUES ('f')")
    conn.close()
    assert not gate.locked()


def test_released_when_begin_fails(sqlite_db, tmp_path: Path) -> None:
    database, gate = sqlite_db
    other = sqlite3.connect(tmp_path / "gate.db", isolation_level=None)  # another process, in effect
    other.execute("BEGIN IMMEDIATE")
    try:
        conn = database.write_engine.connect()
        conn.connection.dbapi_connection.execute("PRAGMA busy_timeout=50")
        with pytest.raises(sa.exc.OperationalError):
            conn.exec_driver_sql("INSERT INTO t (v) VALUES ('g')")
        assert not gate.locked()
        conn.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not gate.locked()


def test_waiting_writers_queue_on_the_gate_and_all_commit(sqlite_db) -> None:
    database, gate = sqlite_db
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                with database.transaction() as session:
                    session.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{n}-{i}"})
                    time.sleep(0.001)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert not gate.locked()
    with database.read_session() as session:
        assert session.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 160


def test_memory_databases_have_no_gate(tmp_path: Path) -> None:
    database: Database = make_database(Settings(database_url="sqlite://", storage=str(tmp_path / "ev")))
    try:
        with database.transaction() as session:
            session.execute(sa.text("SELECT 1"))
        raw = database.write_engine.raw_connection()
        try:
            assert getattr(raw.dbapi_connection, "gate", None) is None
        finally:
            raw.close()
    finally:
        database.dispose()


def test_the_gate_passes_to_waiters_in_the_order_they_came() -> None:
    gate = WriterGate()
    assert gate.acquire()
    order: list[str] = []

    def wait_for_it(name: str) -> None:
        assert gate.acquire(timeout=10)
        order.append(name)
        gate.release()

    first = threading.Thread(target=wait_for_it, args=("first",))
    first.start()
    _until(lambda: len(gate._waiters) == 1)
    second = threading.Thread(target=wait_for_it, args=("second",))
    second.start()
    _until(lambda: len(gate._waiters) == 2)
    # The holder lets go and asks again at once (a batch committing one group and starting the
    # next): a plain lock would usually let it straight back in; this one puts it behind the others.
    gate.release()
    assert gate.acquire(timeout=10)
    order.append("holder again")
    gate.release()
    first.join(10)
    second.join(10)
    assert order == ["first", "second", "holder again"]
    assert not gate.locked()


def test_a_waiter_that_gives_up_leaves_the_line() -> None:
    gate = WriterGate()
    assert gate.acquire()
    started = time.monotonic()
    assert gate.acquire(timeout=0.05) is False
    assert time.monotonic() - started >= 0.05
    assert len(gate._waiters) == 0
    gate.release()
    assert not gate.locked()
    assert gate.acquire(timeout=0)  # free again, taken at once
    gate.release()
    with pytest.raises(RuntimeError):
        gate.release()


def _until(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_connection_collected_while_holding_the_gate_gives_it_back_without_waiting(tmp_path: Path) -> None:
    """Its finalizer may run inside the gate's own critical section (a garbage collection set off
    there), so it must not wait for the gate's mutex."""
    gate = WriterGate()
    conn = sqlite3.connect(tmp_path / "held.db", factory=GatedConnection)
    assert isinstance(conn, GatedConnection)
    conn.gate = gate
    conn.acquire_gate()
    assert gate.locked()
    returned = threading.Event()

    def finalise_inside_the_mutex() -> None:
        with gate._mutex:
            conn.__del__()
            returned.set()

    finaliser = threading.Thread(target=finalise_inside_the_mutex, daemon=True)
    finaliser.start()
    assert returned.wait(5)  # it did not block on the mutex its own thread holds
    _until(lambda: not gate.locked())
    conn.close()
    assert gate.acquire(timeout=0)
    gate.release()


def test_a_wait_interrupted_by_an_exception_leaves_the_line() -> None:
    """A waiter interrupted (Ctrl-C in a CLI command, a test's timeout) must not stay queued: the
    gate would be handed to it and held forever."""
    gate = WriterGate()
    assert gate.acquire()

    def interrupt(signum: int, frame: Any) -> None:
        raise TimeoutError("interrupted while waiting")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(TimeoutError):
            gate.acquire(timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(gate._waiters) == 0
    gate.release()
    assert not gate.locked()
