"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from CLAIMDESK_TEST_POSTGRES_URL (a server where the user may create databases,
e.g. postgresql+psycopg://claimdesk:claimdesk@127.0.0.1:5432/claimdesk). Without it, or when the
server does not answer, the PostgreSQL runs are skipped with that reason.

Isolation: SQLite tests get a copy of a database migrated once per session; PostgreSQL tests share
one migrated database per xdist worker, emptied (TRUNCATE ... RESTART IDENTITY) before each test.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.roles import Role
from app.auth.service import Principal
from app.clock import clock
from app.config import Settings
from app.db import Database, make_database
from app.main import create_app
from app.migrate import upgrade

PG_ENV = "CLAIMDESK_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = make_database(Settings(_env_file=None, database_url=f"sqlite:///{path}"))  # type: ignore[call-arg]
    upgrade(database.write_engine)
    database.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    admin_url = _pg_admin_url()
    if not admin_url:
        pytest.skip(f"PostgreSQL runs skipped: set {PG_ENV} to run them (CI does)")
    name = f"claimdesk_test_{_worker()}_{os.getpid()}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL runs skipped: the server at {PG_ENV} did not answer ({exc.orig})")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _truncate_pg(database: Database) -> None:
    with database.write_engine.begin() as conn:
        tables = [
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "claimdesk.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "storage": str(tmp_path / "evidence"),
        "rate_limit_writes": "0",
        "webhook_allowed_cidrs": ["127.0.0.0/8"],
        "webhook_retry_schedule": [0.2, 0.5],
        "webhook_timeout": 2.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = make_database(settings)
    if database.is_postgres:
        _truncate_pg(database)
    yield database
    database.dispose()


@dataclass
class Person:
    principal: Principal
    key: str

    @property
    def id(self) -> int:
        return self.principal.user_id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Desk:
    """Creates people directly through the services (the API is what the tests exercise)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._n = 0

    def person(self, role: Role | str, *, name: str | None = None) -> Person:
        role = Role(role)
        self._n += 1
        email = f"{role.value}{self._n}@desk.test"
        with self.database.transaction() as session:
            user = auth_service.create_user(
                session, actor=Actor.system(), email=email, name=name or f"{role.value} {self._n}", role=role
            )
            assert user.id is not None
            row, key = auth_service.create_api_key(session, actor=Actor.system(), user_id=user.id)
        return Person(Principal(user.id, role, email, user.name, row.id), key)


@pytest.fixture
def desk(database: Database) -> Desk:
    return Desk(database)


@pytest.fixture
def app(settings: Settings, database: Database) -> Any:
    application = create_app(settings, database)
    application.state.owns_database = False
    application.state.start_worker = False
    return application


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@contextmanager
def serve_in_thread(application: Any) -> Iterator[str]:
    """Run the app under uvicorn on a free loopback port; yields the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def live_url(app: Any) -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url
