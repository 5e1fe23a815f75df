"""Engines, sessions and the one place that commits.

SQLite: WAL, foreign keys on, a busy timeout, and every write transaction opened with
``BEGIN IMMEDIATE`` so it takes the write lock up front and can never fail half-way with
"database is locked" after reading. Reads use a second engine with ordinary deferred
transactions so readers never queue behind writers.

PostgreSQL (psycopg 3): one engine serves both; row locks (``SELECT ... FOR UPDATE``) and
``SKIP LOCKED`` do the serialising where it matters.

Routers get a session from ``WriteSessionDep`` or ``ReadSessionDep``; services only flush.
``write_session`` commits after the route function returns and *before* the response is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from app.config import Settings

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


def _sqlite_connect_args(url: str) -> dict[str, Any]:
    return {"check_same_thread": False, "timeout": 30, "isolation_level": None}


def _install_sqlite_events(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@dataclass
class Database:
    """The engines of one database; one per process (or per app in tests)."""

    url: str
    write_engine: Engine
    read_engine: Engine

    @property
    def dialect(self) -> str:
        return self.write_engine.dialect.name

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

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


_factories: dict[int, sessionmaker[Session]] = {}
_factories_lock = threading.Lock()


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
        kwargs: dict[str, Any] = {"connect_args": _sqlite_connect_args(url)}
        if memory:
            kwargs["poolclass"] = StaticPool
        else:
            kwargs.update(pool_size=8, max_overflow=24)
        write_engine = sa.create_engine(url, **kwargs)
        _install_sqlite_events(write_engine, immediate=True)
        if memory:
            read_engine = write_engine
        else:
            read_engine = sa.create_engine(url, **kwargs)
            _install_sqlite_events(read_engine, immediate=False)
        return Database(url=url, write_engine=write_engine, read_engine=read_engine)
    # Enough connections for the server's thread pool (40) so a busy desk does not open and close them.
    engine = sa.create_engine(url, pool_size=20, max_overflow=30, pool_pre_ping=True)
    return Database(url=url, write_engine=engine, read_engine=engine)


def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def _write_session(request: Request) -> Iterator[Session]:
    session = get_database(request).write_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _read_session(request: Request) -> Iterator[Session]:
    session = get_database(request).read_session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


# scope="function": the commit happens when the route function returns, before the response is
# sent, so a client never sees a success that was not durable.
WriteSessionDep = Annotated[Session, Depends(_write_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(_read_session, scope="function")]


def lock_for_update(stmt: sa.Select[Any], db_dialect: str) -> sa.Select[Any]:
    """Row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return stmt.with_for_update() if db_dialect == "postgresql" else stmt


def _apply_naming_convention() -> None:
    from sqlmodel import SQLModel

    SQLModel.metadata.naming_convention = NAMING_CONVENTION


_apply_naming_convention()
