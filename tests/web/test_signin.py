"""Signing in, the session cookie, CSRF and role gating on the desk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.roles import Role
from app.db import Database
from app.main import create_app
from app.web import session as desk_session
from app.web.session import SignInThrottle
from tests.conftest import make_settings
from tests.web.conftest import DeskPerson, csrf_of, sign_in


def test_pages_need_sign_in_and_come_back_after(client: TestClient, people: dict[str, DeskPerson]) -> None:
    response = client.get("/desk/?q=flood", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/desk/signin?next=%2Fdesk%2F%3Fq%3Dflood"
    who = people["checker"]
    response = client.post(
        "/desk/signin",
        data={"email": who.email.upper(), "password": who.password, "next": "/desk/?q=flood"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/desk/?q=flood"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/desk" in cookie
    assert "Secure" not in cookie  # the public base URL is http here
    page = client.get("/desk/")
    assert page.status_code == 200
    assert "Sign out" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"


def test_secure_cookie_when_the_site_is_https(app: Any, people: dict[str, DeskPerson]) -> None:
    app.state.settings = app.state.settings.model_copy(update={"public_base_url": "https://desk.example"})
    with TestClient(app, base_url="https://desk.example") as client:
        who = people["viewer"]
        response = client.post(
            "/desk/signin", data={"email": who.email, "password": who.password}, follow_redirects=False
        )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/desk", "/api/v1/claims", "/desk\\x"])
def test_next_never_leaves_the_desk(client: TestClient, people: dict[str, DeskPerson], target: str) -> None:
    who = people["viewer"]
    response = client.post(
        "/desk/signin",
        data={"email": who.email, "password": who.password, "next": target},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/desk/"


def test_wrong_password_unknown_email_and_no_password_read_the_same(
    client: TestClient, people: dict[str, DeskPerson], desk: Any
) -> None:
    nopass = desk.person(Role.checker)  # an API-only user: no password set
    answers = []
    for email, password in (
        (people["checker"].email, "wrong password!"),
        ("nobody@desk.test", "whatever it is"),
        (nopass.principal.email, ""),
    ):
        response = client.post("/desk/signin", data={"email": email, "password": password}, follow_redirects=False)
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        answers.append(response.text.replace(email, "EMAIL"))
    assert "The email or password is not right" in answers[0]
    assert answers[0] == answers[1] == answers[2]
    assert 'role="alert"' in answers[0]


def test_sign_in_is_throttled_per_email(client: TestClient, people: dict[str, DeskPerson]) -> None:
    who = people["editor"]
    for _ in range(5):
        response = client.post("/desk/signin", data={"email": who.email, "password": "not it at all"})
        assert response.status_code == 401
    response = client.post("/desk/signin", data={"email": who.email, "password": who.password})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in response.text
    # Another address from the same client is not locked out by these five.
    other = people["viewer"]
    response = client.post(
        "/desk/signin", data={"email": other.email, "password": other.password}, follow_redirects=False
    )
    assert response.status_code == 303


def test_forged_or_expired_cookies_are_ignored(client: TestClient, people: dict[str, DeskPerson], app: Any) -> None:
    settings = app.state.settings
    who = people["admin"]
    cookie, _ = desk_session.issue(settings, user_id=who.id, password_hash=None)
    payload, signature = cookie.split(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    for value in (forged, cookie + "x", "garbage", ""):
        client.cookies.set(desk_session.COOKIE_NAME, value, path="/desk")
        assert client.get("/desk/", follow_redirects=False).status_code == 303
    # Signed properly but with the wrong credential version (the password hash differs).
    client.cookies.set(desk_session.COOKIE_NAME, cookie, path="/desk")
    assert client.get("/desk/", follow_redirects=False).status_code == 303
    assert desk_session.read(settings, cookie, now=10**12) is None  # long expired by then


def test_sign_out_ends_the_session(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["checker"])
    response = client.post("/desk/signout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert 'claimdesk_desk=""' in response.headers["set-cookie"]
    assert client.get("/desk/", follow_redirects=False).status_code == 303
    assert "You are signed out." in client.get(response.headers["location"]).text


def test_unsafe_requests_need_the_csrf_token(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["checker"])
    for data in ({}, {"csrf": "nope"}, {"csrf": csrf[:-1]}):
        response = client.post("/desk/signout", data=data)
        assert response.status_code == 403
        assert "security token" in response.text
    # Still signed in: the refused sign-out did nothing.
    assert client.get("/desk/", follow_redirects=False).status_code == 200
    # The header works for fetch/XHR.
    response = client.post("/desk/signout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert response.status_code == 303


def test_cross_site_posts_are_refused_even_with_the_token(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["checker"])
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        response = client.post("/desk/signout", data={"csrf": csrf}, headers=headers)
        assert response.status_code == 403
    ok = client.post(
        "/desk/signout",
        data={"csrf": csrf},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    response = client.post(
        "/desk/signin",
        data={"email": people["checker"].email, "password": people["checker"].password},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_deactivation_role_change_and_new_password_apply_at_the_next_request(
    client: TestClient, people: dict[str, DeskPerson], database: Database
) -> None:
    who = people["editor"]
    sign_in(client, who)
    assert 'href="/desk/review"' in client.get("/desk/").text
    with database.transaction() as session:
        auth_service.update_user(session, actor=Actor.system(), user_id=who.id, role=Role.checker)
    page = client.get("/desk/")
    assert page.status_code == 200
    assert 'href="/desk/review"' not in page.text  # the nav follows the new role at once
    assert client.get("/desk/review").status_code == 403
    with database.transaction() as session:
        auth_service.update_user(session, actor=Actor.system(), user_id=who.id, password="another password 2")
    assert client.get("/desk/", follow_redirects=False).status_code == 303
    sign_in(client, DeskPerson(who.person, "another password 2"))
    with database.transaction() as session:
        auth_service.update_user(session, actor=Actor.system(), user_id=who.id, active=False)
    assert client.get("/desk/", follow_redirects=False).status_code == 303
    response = client.post("/desk/signin", data={"email": who.email, "password": "another password 2"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("viewer", "/desk/", 200),
        ("viewer", "/desk/review", 403),
        ("viewer", "/desk/intake", 403),
        ("viewer", "/desk/admin", 403),
        ("contributor", "/desk/intake", 200),
        ("checker", "/desk/review", 403),
        ("editor", "/desk/review", 200),
        ("editor", "/desk/admin", 403),
        ("admin", "/desk/admin", 200),
    ],
)
def test_pages_follow_the_api_roles(
    client: TestClient, people: dict[str, DeskPerson], role: str, path: str, status: int
) -> None:
    sign_in(client, people[role])
    response = client.get(path)
    assert response.status_code == status
    if status == 403:
        assert "role or above" in response.text
        assert 'role="alert"' in response.text


def test_every_form_on_the_queue_page_carries_the_token(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["admin"])
    html = client.get("/desk/").text
    assert html.count('method="post"') == html.count(f'name="csrf" value="{csrf}"')
    assert csrf_of(html) == csrf


def test_a_configured_secret_key_lets_every_process_read_the_cookie(
    db_url: str, tmp_path: Any, database: Database, people: dict[str, DeskPerson]
) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    def app_with(key: str) -> Any:
        application = create_app(make_settings(db_url, tmp_path, secret_key=key), database)
        application.state.owns_database = False
        return application

    who = people["checker"]
    with TestClient(app_with("one long shared secret, the same on every node")) as first:
        sign_in(first, who)
        cookie = first.cookies.get(desk_session.COOKIE_NAME)
    assert cookie
    with TestClient(app_with("one long shared secret, the same on every node")) as second:
        second.cookies.set(desk_session.COOKIE_NAME, cookie, path="/desk")
        assert second.get("/desk/", follow_redirects=False).status_code == 200
    with TestClient(app_with("another secret: a rotated key signs everyone out")) as third:
        third.cookies.set(desk_session.COOKIE_NAME, cookie, path="/desk")
        assert third.get("/desk/", follow_redirects=False).status_code == 303


def test_sign_ins_sent_side_by_side_are_throttled_too(app: Any, people: dict[str, DeskPerson]) -> None:
    who = people["editor"]

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
            answers = await asyncio.gather(
                *(browser.post("/desk/signin", data={"email": who.email, "password": "wrong"}) for _ in range(12))
            )
        return sorted(a.status_code for a in answers)

    codes = asyncio.run(burst())
    # Each attempt is counted before its password is checked: five are checked, the rest wait.
    assert codes == [401] * 5 + [429] * 7


def test_a_right_password_is_not_held_against_the_client() -> None:
    throttle = SignInThrottle(per_email=5, per_client=3, window=300)
    for n in range(10):
        wait, stamp = throttle.reserve(f"user{n}@desk.test", "10.0.0.1", now=100.0 + n)
        assert wait == 0
        throttle.succeeded(f"user{n}@desk.test", "10.0.0.1", stamp)
    for n in range(3):
        assert throttle.reserve(f"guess{n}@desk.test", "10.0.0.1", now=200.0)[0] == 0
    assert throttle.reserve("anyone@desk.test", "10.0.0.1", now=200.0)[0] > 0


def test_signing_out_works_when_the_write_budget_is_spent(
    db_url: str, tmp_path: Path, database: Database, people: dict[str, DeskPerson]
) -> None:
    application = create_app(make_settings(db_url, tmp_path, rate_limit_writes="1/hour"), database)
    application.state.owns_database = False
    application.state.start_worker = False
    who = people["checker"]
    with TestClient(application, raise_server_exceptions=False) as browser:
        csrf = sign_in(browser, who)
        spent = [browser.post("/desk/queue/next", data={"csrf": csrf}, follow_redirects=False) for _ in range(2)]
        assert spent[-1].status_code == 429
        out = browser.post("/desk/signout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        assert browser.get("/desk/", follow_redirects=False).status_code in (302, 303, 307)
