"""The in-process API-key lookup cache: what it saves must never outlive a revocation, a
deactivation, a role change or an expiry made in this process; changes made elsewhere (straight in
the database, another process) are seen within the TTL."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.roles import Role
from app.clock import clock


@pytest.fixture(autouse=True)
def _empty_cache():
    auth_service.clear_key_cache()
    yield
    auth_service.clear_key_cache()


def _me(client, person):
    return client.get("/api/v1/me", headers=person.headers)


def test_revocation_deactivation_and_role_change_apply_at_once(client, desk) -> None:
    admin = desk.person("admin")
    checker = desk.person("checker")
    editor = desk.person("editor")
    for p in (checker, editor):
        assert _me(client, p).status_code == 200  # now cached
    r = client.patch(f"/api/v1/users/{editor.id}", json={"role": "viewer"}, headers=admin.headers)
    assert r.status_code == 200
    assert _me(client, editor).json()["role"] == "viewer"
    assert client.get("/api/v1/users", headers=editor.headers).status_code == 403
    assert client.patch(f"/api/v1/users/{checker.id}", json={"active": False}, headers=admin.headers).status_code == 200
    assert _me(client, checker).status_code == 401
    assert client.delete(f"/api/v1/api-keys/{editor.principal.api_key_id}", headers=admin.headers).status_code == 200
    assert _me(client, editor).status_code == 401


def test_expiry_is_checked_on_every_hit(client, desk, database) -> None:
    person = desk.person("viewer")
    with database.transaction() as session:
        _, key = auth_service.create_api_key(
            session, actor=Actor.system(), user_id=person.id, expires_at=clock.now() + timedelta(minutes=5)
        )
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    clock.advance(6 * 60)
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_lookup_racing_an_uncommitted_revocation_is_dropped_at_commit(client, desk, database) -> None:
    admin = desk.person("admin")
    person = desk.person("checker")
    assert _me(client, person).status_code == 200  # cached, and last use recorded (no touch below)
    session = database.write_session()
    try:
        auth_service.revoke_api_key(session, actor=admin.principal.actor, key_id=person.principal.api_key_id)
        # Not committed yet: a reader still sees the key as live, and may cache it again.
        assert _me(client, person).status_code == 200
        session.commit()
    finally:
        session.close()
    assert _me(client, person).status_code == 401


def test_changes_from_elsewhere_are_seen_within_the_ttl(client, desk, database, monkeypatch) -> None:
    monkeypatch.setattr(auth_service, "KEY_CACHE_TTL_SECONDS", 0.3)
    person = desk.person("viewer")
    assert _me(client, person).status_code == 200
    with database.transaction() as session:  # as another process would: straight in the table
        session.execute(
            sa.text("UPDATE api_keys SET revoked_at = :now WHERE id = :id"),
            {"now": clock.now().replace(tzinfo=None), "id": person.principal.api_key_id},
        )
    time.sleep(0.4)
    assert _me(client, person).status_code == 401


def test_the_cache_saves_the_lookup_query(client, desk, database) -> None:
    person = desk.person("viewer")
    assert _me(client, person).status_code == 200
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engines = {database.read_engine, database.write_engine}
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        assert _me(client, person).json()["role"] == Role.viewer.value
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", seen)
    assert not any("api_keys" in s for s in statements)
