"""Engines, sessions and the one place that commits.

SQLite: WAL, foreign keys on, a busy timeout, and every write transaction opened with
``BEGIN IMMEDIATE`` so it takes the write lock up front and can never fail half-way with
"database is locked" after reading. Reads use a second engine with ordinary deferred
transactions so readers never queue behind writers.

Within one process, writers to a SQLite file first pass a *writer gate* (a lock per database file)
taken just before ``BEGIN IMMEDIATE`` and given back when the connection commits, rolls back or
closes, whatever the path (an invalidated connection is closed; a failed BEGIN gives it back at
once). Waiting writers then queue on a lock and start the moment the previous one commits, instead
of sleeping in SQLite's busy handler, whose growing back-off made the latency tail long and unfair.
Other processes (a separate worker, the CLI) still meet the busy timeout as before.

PostgreSQL (psycopg 3): one engine serves both; row locks (``SELECT ... FOR UPDATE``) and
``SKIP LOCKED`` do the serialising where it matters.

Routers get a session from ``WriteSessionDep`` or ``ReadSessionDep``; services only flush.
The commit happens when the route function returns and *before* the response is sent: routers are
built with :class:`CommitOnReturn`, which commits the route's sessions in the route's own worker
thread the moment it returns, or rolls them back if it raises. (Left to a sync dependency's
teardown, the commit would wait for another thread-pool hop and an event-loop turn while SQLite's
write lock is held, and every other writer with it.) The session dependencies themselves are async
and do no I/O in the event loop: whatever an async route leaves open is committed or rolled back
in the thread pool. Read sessions are always rolled back. One consequence: the commit comes before
FastAPI serializes the answer, so an answer that failed to serialize (a bug, answered 500) would
follow a saved change; Idempotency-Key makes a client's retry of it safe.

Routes that declare a read session and no write session also wait, before their thread starts, for
one of the database's ``read_concurrency`` places (``CLAIMDESK_READ_CONCURRENCY``): many CPU-heavy
reads taking turns on the GIL cost about twice the CPU of the same reads two at a time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import json
import os
import sqlite3
import threading
import time
import typing
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool
from starlette.concurrency import run_in_threadpool

from app.config import Settings

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Callable[[Any], datetime | None] | None:
        # SQLite hands back text: one function parses it and attaches the zone, instead of
        # SQLAlchemy's processor followed by the decorator's second pass (every listed claim has ten
        # of these columns).
        if dialect.name == "sqlite":
            return _sqlite_utc
        return super().result_processor(dialect, coltype)


def _sqlite_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def load_json(text: str | bytes) -> Any:
    """JSON columns as Python values. Most stored values are ``null`` or an empty list or object,
    and those skip the parser (a fresh object each time: callers may change what they get)."""
    if len(text) <= 4:
        short = text.decode() if isinstance(text, bytes) else text  # psycopg gives bytes, SQLite text
        if short == "null":
            return None
        if short == "[]":
            return []
        if short == "{}":
            return {}
    return json.loads(text)


SQLITE_BUSY_SECONDS = 30


class GatedConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions pass its database's writer gate. The gate is
    held from just before ``BEGIN IMMEDIATE`` until commit, rollback or close on this connection."""

    gate: WriterGate | None = None
    holding: bool = False

    def acquire_gate(self) -> None:
        if self.gate is None or self.holding:
            return
        if not self.gate.acquire(timeout=SQLITE_BUSY_SECONDS):
            raise sa.exc.OperationalError(
                "BEGIN IMMEDIATE",
                None,
                sqlite3.OperationalError("database is locked (waited for this process's other writers)"),
            )
        self.holding = True

    def release_gate(self) -> None:
        if self.holding:
            self.holding = False
            if self.gate is not None:
                self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_gate()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_gate()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_gate()

    def __del__(self) -> None:
        # A garbage collection can run this inside the gate's own critical section (set off by an
        # allocation there, in the same thread), where waiting for the gate's mutex would never end.
        if self.holding and self.gate is not None:
            self.holding = False
            self.gate.release_later()


class WriterGate:
    """A lock that passes to its waiters in the order they came. A plain ``threading.Lock`` lets the
    thread that releases it take it again at once, so a writer that commits in steps (a batch of
    claims) would keep everyone else out between its steps; here the next waiter gets it instead."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, timeout: float = -1) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        try:
            if waiter.acquire(timeout=timeout):
                return True  # handed over by release()
        except BaseException:  # interrupted while waiting (KeyboardInterrupt, a test's timeout)
            with self._mutex:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    self._pass_on()  # handed over meanwhile: to the next in line, or free
            raise
        with self._mutex:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return True  # handed over just as the wait ran out: ours all the same
            return False

    def release(self) -> None:
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unheld writer gate")
            self._pass_on()

    def _pass_on(self) -> None:
        """With the mutex held: to the next in line (the gate stays held), or free."""
        if self._waiters:
            self._waiters.popleft().release()
        else:
            self._held = False

    def release_later(self) -> None:
        """``release`` from another thread, for finalizers that must not wait on the mutex."""
        with contextlib.suppress(RuntimeError):  # the interpreter is shutting down: nobody waits
            threading.Thread(target=self.release, name="claimdesk-gate-release", daemon=True).start()

    def locked(self) -> bool:
        return self._held

    @property
    def waiting(self) -> int:
        """How many writers are waiting for the gate."""
        return len(self._waiters)


_gates: dict[str, WriterGate] = {}
_gates_lock = threading.Lock()


def writer_gate(path: str) -> WriterGate:
    """The process-wide writer gate of the SQLite file at ``path``."""
    key = os.path.realpath(path)
    with _gates_lock:
        return _gates.setdefault(key, WriterGate())


def _sqlite_file(url: str) -> str | None:
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _sqlite_connect_args(url: str) -> dict[str, Any]:
    return {
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_SECONDS,
        "isolation_level": None,
        "factory": GatedConnection,
    }


def _install_sqlite_events(engine: Engine, *, immediate: bool, synchronous: str = "FULL") -> None:
    path = _sqlite_file(str(engine.url)) if immediate else None
    gate = writer_gate(path) if path is not None else None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, GatedConnection):
            dbapi_conn.gate = gate
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # FULL: each commit's WAL frames reach the disk before the answer goes out, so a power cut
        # loses nothing acknowledged. NORMAL (CLAIMDESK_SQLITE_SYNCHRONOUS) trades that for speed.
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        if not (immediate and isinstance(dbapi_conn, GatedConnection)):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
            return
        dbapi_conn.acquire_gate()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_conn.release_gate()
            raise


_loop_connections_lock = threading.Lock()

# Read-only routes at once per process, unless CLAIMDESK_READ_CONCURRENCY says otherwise. A SQLite
# read is CPU work in this process (two at a time measured best); a PostgreSQL read also waits on
# the network and the server, so more of them overlap usefully, and a slow one blocks fewer others.
READ_CONCURRENCY_SQLITE = 2
READ_CONCURRENCY_POSTGRES = 8
# PostgreSQL connections each event loop keeps for point reads (they wait their turn beyond this).
POINT_READ_POOL_SIZE = 8


@dataclass
class Database:
    """The engines of one database; one per process (or per app in tests)."""

    url: str
    write_engine: Engine
    read_engine: Engine
    # point_read's connections, one per event-loop thread (uvicorn has one; tests may run several).
    _loop_connections: dict[int, tuple[threading.Thread, sa.Connection]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _loop_engine: Engine | None = field(default=None, repr=False, compare=False)
    # PostgreSQL point reads: an async engine per event loop (its connections belong to that loop),
    # with the generator whose closing, when the loop shuts down, disposes of it.
    _loop_async_engines: dict[asyncio.AbstractEventLoop, tuple[AsyncEngine, AsyncGenerator[None, None]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    read_concurrency: int = READ_CONCURRENCY_SQLITE
    _read_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False, compare=False
    )

    @property
    def dialect(self) -> str:
        return self.write_engine.dialect.name

    @functools.cached_property
    def read_url(self) -> str:
        """The read engine's URL as text (password masked): the scope of cached key look-ups."""
        return str(self.read_engine.url)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def write_session(self) -> Session:
        return _session_factory(self.write_engine)()

    def read_session(self) -> Session:
        return _session_factory(self.read_engine)()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work outside HTTP (CLI, worker, tests): commits on success."""
        session = self.write_session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def read_limiter(self) -> anyio.CapacityLimiter:
        """The running event loop's limit on read-only routes in threads (``read_concurrency``)."""
        loop = asyncio.get_running_loop()
        limiter = self._read_limiters.get(loop)
        if limiter is None:
            with _loop_connections_lock:  # loops of other threads (tests) may be adding theirs
                limiter = self._read_limiters.setdefault(loop, anyio.CapacityLimiter(self.read_concurrency))
        return limiter

    def writers_waiting(self) -> bool:
        """Whether other writers of this process wait for the database's write lock (SQLite files:
        its writer gate). On PostgreSQL writers lock rows, not the database: always False."""
        gate = self._writer_gate
        return gate is not None and gate.waiting > 0

    @functools.cached_property
    def _writer_gate(self) -> WriterGate | None:
        path = _sqlite_file(self.url) if self.dialect == "sqlite" else None
        return writer_gate(path) if path is not None else None

    @property
    def reads_inline(self) -> bool:
        """Whether :meth:`point_read` runs on a blocking connection in the calling (event-loop)
        thread: SQLite files only. A read by primary key there costs about 0.2 ms (0.4 ms for a claim
        with its reviewers and presentation, measured), less than the thread-pool trip it saves
        under load. PostgreSQL point reads use asyncio connections instead (nothing blocks the loop);
        the shared connection of an in-memory SQLite is used from the thread pool."""
        return self.dialect == "sqlite" and self.read_engine is not self.write_engine

    async def point_read(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)`` for short lookups by key from async routes, with Core statements only
        (no ORM session: its set-up and tear-down cost as much as the read). A point read never
        writes, and each one sees what was committed before it started.

        On a SQLite file it runs right here, on a connection of the event loop's thread alone (``fn``
        cannot await, so nothing else uses it meanwhile). That connection is opened directly, not
        checked out of the read pool, which the thread pool may have emptied; it is closed once its
        thread has ended, or by :meth:`dispose`. Whatever ``fn`` read is rolled back afterwards.

        On PostgreSQL it runs in the event loop too, but its round trips do not block it: ``fn`` gets
        the synchronous face of an asyncio connection (SQLAlchemy's ``run_sync``), from a small pool
        of the loop's own in autocommit, so a read costs no BEGIN or ROLLBACK round trip. Each
        statement sees its own snapshot, as every statement of a READ COMMITTED transaction (the
        server's default, which Claimdesk keeps) would anyway. Measured in process, 16 reads at
        once: about 1,000 claims a second against 650 through the thread pool, at two thirds of the
        CPU. An in-memory SQLite database, or PostgreSQL through a driver other than psycopg, reads in
        the thread pool."""
        if self.reads_inline:
            return _read_on(self._loop_connection(), fn)
        if self.is_postgres and self.url.startswith("postgresql+psycopg://"):
            engine = await self._loop_async_engine()
            async with engine.connect() as conn:
                return await conn.run_sync(fn)
        return await run_in_threadpool(self._pooled_read, fn)

    async def _loop_async_engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        held = self._loop_async_engines.get(loop)
        if held is not None:
            return held[0]
        # The engines of loops that have closed without shutting their generators down (a loop
        # closed by hand): their connections cannot be closed from here, only let go.
        for other in [lp for lp in list(self._loop_async_engines) if lp.is_closed()]:
            gone = self._loop_async_engines.pop(other, None)
            if gone is not None:
                gone[0].sync_engine.dispose(close=False)
        engine = create_async_engine(
            self.url,
            pool_size=POINT_READ_POOL_SIZE,
            max_overflow=0,
            isolation_level="AUTOCOMMIT",
            json_deserializer=load_json,
        )
        _ping_after_idle(engine.sync_engine)
        keeper = _dispose_when_loop_ends(self, loop, engine)
        self._loop_async_engines[loop] = (engine, keeper)
        # Started here, so the loop knows it: when the loop shuts down (asyncio.run, uvicorn and the
        # test client's portal all do), it closes the generator, which disposes of the engine.
        await keeper.__anext__()
        return engine

    async def dispose_loop_reads(self) -> None:
        """Close the running loop's point-read connections (the app's shutdown calls this)."""
        held = self._loop_async_engines.get(asyncio.get_running_loop())
        if held is not None:
            await held[1].aclose()  # forgets and disposes of the engine

    def _pooled_read(self, fn: Callable[[sa.Connection], T]) -> T:
        with self.read_engine.connect() as conn:
            return _read_on(conn, fn)

    def _loop_connection(self) -> sa.Connection:
        me = threading.current_thread()
        key = threading.get_ident()
        held = self._loop_connections.get(key)
        if held is not None and held[0] is me and not (held[1].closed or held[1].invalidated):
            return held[1]
        with _loop_connections_lock:
            if self._loop_engine is None:
                engine = sa.create_engine(
                    self.read_engine.url,
                    poolclass=NullPool,
                    connect_args=_sqlite_connect_args(self.url),
                    json_deserializer=load_json,
                )
                _install_sqlite_events(engine, immediate=False)
                self._loop_engine = engine
            # This thread's unusable connection, and those of threads that have ended.
            gone = [k for k, (thread, _) in self._loop_connections.items() if k == key or not thread.is_alive()]
            stale = [self._loop_connections.pop(k)[1] for k in gone]
            conn = self._loop_engine.connect()
            self._loop_connections[key] = (me, conn)
        for old in stale:
            old.close()
        return conn

    def dispose(self) -> None:
        with _loop_connections_lock:
            held, self._loop_connections = list(self._loop_connections.values()), {}
            loop_engine, self._loop_engine = self._loop_engine, None
            async_engines, self._loop_async_engines = list(self._loop_async_engines.items()), {}
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, (engine, keeper) in async_engines:
            if loop.is_running() and loop is not current:
                # Their connections belong to that loop: it closes them (without waiting here).
                asyncio.run_coroutine_threadsafe(keeper.aclose(), loop)
            else:
                # This loop's own (dispose_loop_reads does this properly), or a loop that has
                # stopped: let them go; they close when collected.
                engine.sync_engine.dispose(close=False)
        for _, conn in held:
            conn.close()
        if loop_engine is not None:
            loop_engine.dispose()
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


async def _dispose_when_loop_ends(
    database: Database, loop: asyncio.AbstractEventLoop, engine: AsyncEngine
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if database._loop_async_engines.get(loop, (None,))[0] is engine:
            database._loop_async_engines.pop(loop, None)
        await engine.dispose()


_factories: dict[int, sessionmaker[Session]] = {}
_factories_lock = threading.Lock()


def _read_on(conn: sa.Connection, fn: Callable[[sa.Connection], T]) -> T:
    """``fn(conn)``, then whatever it read is let go: a read is never committed."""
    try:
        return fn(conn)
    finally:
        conn.rollback()


def _session_factory(engine: Engine) -> sessionmaker[Session]:
    key = id(engine)
    factory = _factories.get(key)
    if factory is None:
        with _factories_lock:
            factory = _factories.setdefault(key, sessionmaker(bind=engine, expire_on_commit=False, autoflush=False))
    return factory


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_database(settings: Settings) -> Database:
    # Every table must be known before the first flush, or foreign keys cannot be resolved.
    import app.models  # noqa: F401

    url = normalise_url(settings.database_url)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        kwargs: dict[str, Any] = {"connect_args": _sqlite_connect_args(url), "json_deserializer": load_json}
        if memory:
            kwargs["poolclass"] = StaticPool
        else:
            # Kept open for the thread pool's (40) busy moments: a connection closed on check-in and
            # opened again costs its PRAGMAs and a cold page cache on every request.
            kwargs.update(pool_size=24, max_overflow=16)
        write_engine = sa.create_engine(url, **kwargs)
        _install_sqlite_events(write_engine, immediate=True, synchronous=settings.sqlite_synchronous)
        if memory:
            read_engine = write_engine
        else:
            read_engine = sa.create_engine(url, **kwargs)
            _install_sqlite_events(read_engine, immediate=False, synchronous=settings.sqlite_synchronous)
        return Database(
            url=url,
            write_engine=write_engine,
            read_engine=read_engine,
            read_concurrency=settings.read_concurrency or READ_CONCURRENCY_SQLITE,
        )
    # Enough connections for the server's thread pool (40) so a busy desk does not open and close them.
    engine = sa.create_engine(url, pool_size=20, max_overflow=30, json_deserializer=load_json)
    _ping_after_idle(engine)
    return Database(
        url=url,
        write_engine=engine,
        read_engine=engine,
        read_concurrency=settings.read_concurrency or READ_CONCURRENCY_POSTGRES,
    )


# A pooled PostgreSQL connection is checked with a round trip before use only when it has sat idle
# this long. SQLAlchemy's pool_pre_ping checks on every checkout, which under load is one extra round
# trip per request on connections that were used milliseconds before. The price: after a server
# restart, the first requests to take a connection that had been used within the last second fail
# (the first such failure renews the whole pool, so the requests after it get new connections).
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "claimdesk_idle_since"


def _ping_after_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                # The server went away: every pooled connection is renewed (the others were opened
                # to the same server), and this checkout gets a new one.
                raise sa.exc.InvalidatePoolError(str(exc)) from exc
            raise


def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def _finish(session: Session, *, commit: bool) -> None:
    """Ends what the route left open. A sync route has already committed or rolled back in its own
    thread (:class:`CommitOnReturn`), so this is in-loop bookkeeping with no I/O; only what an async
    route left open goes to the thread pool, so a database round trip never blocks the event loop."""
    try:
        if session.in_transaction():
            await run_in_threadpool(session.commit if commit else session.rollback)
    finally:
        if session.in_transaction():  # a commit that raised: closing rolls back, in the pool too
            await run_in_threadpool(session.close)
        else:
            session.close()


COMMITS = "claimdesk.commits"  # in Session.info: the session's work is committed on success
READ_LIMITER = "claimdesk.read_limiter"  # in a read session's info: the limit its route runs under


async def _write_session(request: Request) -> AsyncIterator[Session]:
    session = get_database(request).write_session()
    session.info[COMMITS] = True
    try:
        yield session
    except BaseException:
        await _finish(session, commit=False)
        raise
    await _finish(session, commit=True)


async def _read_session(request: Request) -> AsyncIterator[Session]:
    database = get_database(request)
    session = database.read_session()
    session.info[READ_LIMITER] = database.read_limiter()
    try:
        yield session
    finally:
        await _finish(session, commit=False)


# scope="function": the commit happens when the route function returns, before the response is
# sent, so a client never sees a success that was not durable.
WriteSessionDep = Annotated[Session, Depends(_write_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(_read_session, scope="function")]


def _commit_on_return(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        sessions = [v for v in kwargs.values() if isinstance(v, Session)]
        try:
            result = endpoint(*args, **kwargs)
        except BaseException:
            for session in sessions:
                session.rollback()
            raise
        for session in sessions:
            if not session.in_transaction():
                continue
            if session.info.get(COMMITS):
                session.commit()
            else:
                session.rollback()  # a read session: nothing in it is ever kept
        return result

    run.commits_on_return = True  # type: ignore[attr-defined]
    if _session_dependencies(endpoint) != {_read_session}:
        return run  # FastAPI runs it in its thread pool, as any sync endpoint

    @functools.wraps(endpoint)
    async def in_thread(*args: Any, **kwargs: Any) -> Any:
        # What FastAPI does with a sync endpoint (a worker thread, context variables copied), except
        # that the thread waits for a place under its database's read limit. FastAPI then validates
        # the answer in the event loop (for a page of 50 claims about 0.2 ms, measured).
        limiter = next((v.info.get(READ_LIMITER) for v in kwargs.values() if isinstance(v, Session)), None)
        return await anyio.to_thread.run_sync(functools.partial(run, *args, **kwargs), limiter=limiter)

    in_thread.commits_on_return = True  # type: ignore[attr-defined]
    return in_thread


def _session_dependencies(endpoint: Callable[..., Any]) -> set[Callable[..., Any]]:
    """Which of the session dependencies (read, write) the endpoint's own parameters declare."""
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except Exception:  # an annotation that cannot be resolved here: treat the route as a writer
        return {_write_session}
    found: set[Callable[..., Any]] = set()
    for hint in hints.values():
        for meta in getattr(hint, "__metadata__", ()):
            dependency = getattr(meta, "dependency", None)
            if dependency is _read_session or dependency is _write_session:
                found.add(dependency)
    return found


class CommitOnReturn(APIRoute):
    """A route whose (sync) endpoint commits its database sessions in its own thread as it returns.
    Routes declaring a read session and no write session run under the database's read limit
    (``read_concurrency``); the others in the thread pool, as FastAPI runs any sync endpoint.

    FastAPI reads the endpoint's signature through ``functools.wraps``, so parameters, dependencies and
    the OpenAPI document are those of the function as written."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint) and not getattr(endpoint, "commits_on_return", False):
            endpoint = _commit_on_return(endpoint)
        super().__init__(path, endpoint, **kwargs)


def lock_for_update(stmt: sa.Select[Any], db_dialect: str) -> sa.Select[Any]:
    """Row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return stmt.with_for_update() if db_dialect == "postgresql" else stmt


def _apply_naming_convention() -> None:
    from sqlmodel import SQLModel

    SQLModel.metadata.naming_convention = NAMING_CONVENTION


_apply_naming_convention()
