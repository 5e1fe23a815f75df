"""A database that cannot be reached, or whose write lock does not come free in time, is 503
problem+json with Retry-After (retry later), not a 500; other database errors stay 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import app.db
from app.db import writer_gate
from app.main import create_app, database_unavailable
from tests.conftest import make_settings


def _error(orig: Exception) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", None, orig)


def test_which_database_errors_mean_unavailable() -> None:
    assert database_unavailable(_error(sqlite3.OperationalError("database is locked")))
    assert database_unavailable(_error(sqlite3.OperationalError("unable to open database file")))
    assert not database_unavailable(_error(sqlite3.OperationalError("no such table: claims")))
    assert database_unavailable(_error(psycopg.OperationalError("connection failed: Connection refused")))
    assert not database_unavailable(_error(psycopg.errors.QueryCanceled("canceling statement")))
    assert database_unavailable(_error(psycopg.errors.AdminShutdown("terminating connection")))
    invalidated = sa.exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True)
    assert database_unavailable(invalidated)


def test_an_unreachable_postgresql_is_503_with_retry_after(tmp_path: Path) -> None:
    # Nothing listens on port 1 of the loopback: every connection is refused.
    settings = make_settings("postgresql+psycopg://claimdesk:x@127.0.0.1:1/claimdesk", tmp_path)
    application = create_app(settings, start_worker=False)
    with TestClient(application, raise_server_exceptions=False) as client:
        r = client.get("/api/v1/claims/1", headers={"Authorization": "Bearer cdk_not_looked_up_yet"})
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["Retry-After"] == "2"
    assert r.json()["type"].endswith("/database-unavailable")


def test_a_sqlite_writer_kept_waiting_too_long_is_503_and_nothing_changes(
    client, desk, database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.is_postgres:
        pytest.skip("SQLite's write lock")
    editor = desk.person("editor")
    monkeypatch.setattr(app.db, "SQLITE_BUSY_SECONDS", 0.2)
    gate = writer_gate(database.url.removeprefix("sqlite:///"))
    assert gate.acquire(timeout=5)  # another writer holds the database for longer than the wait
    try:
        r = client.post("/api/v1/claims", json={"text": "Waits for the writer"}, headers=editor.headers)
    finally:
        gate.release()
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "2"
    assert r.json()["type"].endswith("/database-unavailable")
    with database.read_session() as session:
        assert session.execute(sa.text("SELECT count(*) FROM claims")).scalar_one() == 0
    # Once the lock is free the same request goes through.
    again = client.post("/api/v1/claims", json={"text": "Waits for the writer"}, headers=editor.headers)
    assert again.status_code == 201
