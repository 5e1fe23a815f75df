"""Users, roles and API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.clock import clock


@pytest.fixture
def admin(desk):
    return desk.person("admin")


def test_admin_creates_users_and_keys(client, admin, database) -> None:
    r = client.post(
        "/api/v1/users",
        json={"email": " Amina@Desk.Example ", "name": "Amina", "role": "checker"},
        headers=admin.headers,
    )
    assert r.status_code == 201
    user = r.json()
    assert user["email"] == "amina@desk.example" and user["role"] == "checker" and user["active"] is True
    assert "password" not in user and "password_hash" not in user
    dup = client.post(
        "/api/v1/users", json={"email": "amina@desk.example", "name": "A", "role": "viewer"}, headers=admin.headers
    )
    assert dup.status_code == 409
    r = client.post(f"/api/v1/users/{user['id']}/api-keys", json={"name": "laptop"}, headers=admin.headers)
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    key = r.json()["key"]
    assert key.startswith("cdk_") and len(key) > 40 and r.json()["prefix"] == key[:12]
    # the key works, and is stored only hashed
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).json()
    assert me["id"] == user["id"] and me["api_key_id"] == r.json()["id"]
    with database.read_session() as s:
        stored = s.execute(sa.text("SELECT key_hash FROM api_keys WHERE id = :i"), {"i": r.json()["id"]}).scalar_one()
    assert key not in stored and len(stored) == 64
    listed = client.get(f"/api/v1/users/{user['id']}/api-keys", headers=admin.headers).json()["items"]
    assert listed[0]["last_used_at"] is not None and "key" not in listed[0]
    # revoke: refused at once
    assert client.delete(f"/api/v1/api-keys/{r.json()['id']}", headers=admin.headers).status_code == 200
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_roles_gate_admin_routes(client, desk) -> None:
    for role in ("viewer", "contributor", "checker", "editor"):
        p = desk.person(role)
        assert client.get("/api/v1/users", headers=p.headers).status_code == 403
        assert client.get("/api/v1/me", headers=p.headers).status_code == 200
    assert client.get("/api/v1/users").status_code == 401


def test_inactive_users_and_expired_keys_are_refused(client, admin, desk) -> None:
    checker = desk.person("checker")
    assert client.patch(f"/api/v1/users/{checker.id}", json={"active": False}, headers=admin.headers).status_code == 200
    assert client.get("/api/v1/me", headers=checker.headers).status_code == 401
    client.patch(f"/api/v1/users/{checker.id}", json={"active": True}, headers=admin.headers)
    assert client.get("/api/v1/me", headers=checker.headers).status_code == 200
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    k = client.post(f"/api/v1/users/{checker.id}/api-keys", json={"expires_at": soon}, headers=admin.headers).json()
    h = {"Authorization": f"Bearer {k['key']}"}
    assert client.get("/api/v1/me", headers=h).status_code == 200
    clock.advance(2 * 3600)
    assert client.get("/api/v1/me", headers=h).status_code == 401
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (
        client.post(
            f"/api/v1/users/{checker.id}/api-keys", json={"expires_at": past}, headers=admin.headers
        ).status_code
        == 422
    )


def test_the_last_admin_is_protected(client, admin) -> None:
    assert client.patch(f"/api/v1/users/{admin.id}", json={"role": "editor"}, headers=admin.headers).status_code == 409
    assert client.patch(f"/api/v1/users/{admin.id}", json={"active": False}, headers=admin.headers).status_code == 409
    assert client.delete(f"/api/v1/api-keys/{admin.principal.api_key_id}", headers=admin.headers).status_code == 409
    assert client.get("/api/v1/me", headers=admin.headers).json()["role"] == "admin"


def test_bad_user_input(client, admin) -> None:
    bad = [
        {"email": "not-an-email", "name": "x", "role": "viewer"},
        {"email": "a@b.c", "name": "", "role": "viewer"},
        {"email": "a@b.c", "name": "x", "role": "owner"},
        {"email": "a@b.c", "name": "x", "role": "viewer", "password": "short"},
        {"email": "a@b.c", "name": "x", "role": "viewer", "extra": 1},
    ]
    for body in bad:
        assert client.post("/api/v1/users", json=body, headers=admin.headers).status_code == 422, body
    assert client.patch("/api/v1/users/9999", json={"name": "x"}, headers=admin.headers).status_code == 404
    assert client.post("/api/v1/users/9999/api-keys", json={}, headers=admin.headers).status_code == 404
    assert client.delete("/api/v1/api-keys/9999", headers=admin.headers).status_code == 404
    assert client.get("/api/v1/users?cursor=zzz", headers=admin.headers).status_code == 400


def test_user_changes_are_audited(client, admin, database) -> None:
    u = client.post(
        "/api/v1/users", json={"email": "x@desk.test", "name": "X", "role": "viewer"}, headers=admin.headers
    ).json()
    client.patch(
        f"/api/v1/users/{u['id']}", json={"role": "checker", "password": "a-long-password"}, headers=admin.headers
    )
    with database.read_session() as s:
        rows = s.execute(
            sa.text("SELECT type, actor_id FROM audit_events WHERE subject = :s ORDER BY seq"), {"s": f"user:{u['id']}"}
        ).all()
    assert [r.type for r in rows] == ["user.created", "user.updated"]
    assert all(r.actor_id == admin.id for r in rows)


def test_two_admins_stepping_down_at_once_leave_one_admin(desk, database) -> None:
    """A steps down in a transaction still open when B tries: B must wait for A and then be refused."""
    import threading
    import time

    from app.auth import service as auth_service
    from app.auth.roles import Role
    from app.errors import Conflict

    a, b = desk.person("admin"), desk.person("admin")
    outcome: list[str] = []

    def b_steps_down() -> None:
        try:
            with database.transaction() as session:
                auth_service.update_user(session, actor=b.principal.actor, user_id=b.id, role=Role.editor)
            outcome.append("ok")
        except Conflict:
            outcome.append("refused")

    first = database.write_session()
    try:
        auth_service.update_user(first, actor=a.principal.actor, user_id=a.id, active=False)
        other = threading.Thread(target=b_steps_down)
        other.start()
        time.sleep(0.5)  # B is now waiting on A's locks (or, without them, already done)
        first.commit()
    finally:
        first.close()
    other.join(30)
    assert outcome == ["refused"]
    with database.read_session() as s:
        admins = s.execute(sa.text("SELECT count(*) FROM users WHERE role = 'admin' AND active")).scalar_one()
    assert admins == 1
