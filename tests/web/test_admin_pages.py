"""The admin pages: users, API keys and webhook endpoints with their delivery log."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import Database
from app.webhooks.dispatcher import run_pass
from tests.web.conftest import DeskPerson, csrf_of, sign_in
from tests.web.test_intake_pages import _fits, phone  # noqa: F401

NEW_PASSWORD = "a brand new password"


class Receiver:
    """A loopback HTTP receiver: /ok answers 200, /fail 500; it keeps the paths it was sent."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.paths.append(self.path)
                status = 200 if self.path == "/ok" else 500
                body = b"thanks" if status == 200 else b"broken"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    thread = threading.Thread(target=made.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()
    thread.join(5)


def _post(client: TestClient, path: str, csrf: str, **data: Any) -> Any:
    return client.post(path, data={"csrf": csrf, **data}, follow_redirects=False)


# --- gating -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/desk/admin", "/desk/admin/webhooks", "/desk/admin/users/1"])
def test_admin_pages_are_for_admins_only(client: TestClient, people: dict[str, DeskPerson], path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/desk/signin?next=")
    csrf = sign_in(client, people["editor"])
    response = client.get(path)
    assert response.status_code == 403
    assert "admin role or above" in response.text
    response = _post(client, "/desk/admin/users", csrf, email="x@desk.test", name="X", role="admin")
    assert response.status_code == 403
    sign_in(client, people["checker"])
    assert client.get(path).status_code == 403


def test_forms_need_the_csrf_token(client: TestClient, people: dict[str, DeskPerson]) -> None:
    admin = people["admin"]
    sign_in(client, admin)
    for token in ("", "forged"):
        response = _post(client, "/desk/admin/users", token, email="x@desk.test", name="X", role="admin")
        assert response.status_code == 403
    users = client.get("/api/v1/users", headers=admin.headers).json()["items"]
    assert "x@desk.test" not in [u["email"] for u in users]


# --- users --------------------------------------------------------------------------------------------


def test_create_change_role_and_deactivate_a_user(
    client: TestClient, app: Any, people: dict[str, DeskPerson], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = people["admin"]
    csrf = sign_in(client, admin)
    response = _post(
        client, "/desk/admin/users", csrf, email="Amina@Desk.Test", name="Amina", role="checker", password=NEW_PASSWORD
    )
    assert response.status_code == 303
    user_url = response.headers["location"].split("?")[0]
    assert re.fullmatch(r"/desk/admin/users/\d+", user_url)
    user_id = int(user_url.rsplit("/", 1)[1])
    page = client.get(response.headers["location"]).text
    assert "User created." in page
    assert "amina@desk.test" in page
    assert "Password set" in page
    assert NEW_PASSWORD not in page

    # Amina signs in on her own browser.
    with TestClient(app) as amina:
        response = amina.post(
            "/desk/signin", data={"email": "amina@desk.test", "password": NEW_PASSWORD}, follow_redirects=False
        )
        assert response.status_code == 303
        assert amina.get("/desk/review").status_code == 403  # a checker

        response = _post(client, f"{user_url}/role", csrf, role="editor")
        assert response.status_code == 303
        assert "Role changed." in client.get(response.headers["location"]).text
        assert amina.get("/desk/review").status_code == 200  # the new role applies at her next click
        user = client.get(f"/api/v1/users/{user_id}", headers=admin.headers).json()
        assert user["role"] == "editor"

        response = _post(client, f"{user_url}/active", csrf, active="false")
        assert response.status_code == 303
        assert "Deactivated" in client.get(response.headers["location"]).text
        assert amina.get("/desk/", follow_redirects=False).status_code == 303  # signed out
        assert client.get(f"/api/v1/users/{user_id}", headers=admin.headers).json()["active"] is False

        response = _post(client, f"{user_url}/active", csrf, active="true")
        assert response.status_code == 303
        assert client.get(f"/api/v1/users/{user_id}", headers=admin.headers).json()["active"] is True
    assert NEW_PASSWORD not in caplog.text

    # With another admin about, an admin may step down; the desk then sends them to the queue.
    assert _post(client, f"{user_url}/role", csrf, role="admin").status_code == 303
    response = _post(client, f"/desk/admin/users/{admin.id}/role", csrf, role="editor")
    assert response.status_code == 303
    assert response.headers["location"] == "/desk/?ok=role_changed"
    assert client.get("/desk/admin").status_code == 403


def test_a_refused_new_user_keeps_what_was_typed_but_the_password(
    client: TestClient, people: dict[str, DeskPerson]
) -> None:
    csrf = sign_in(client, people["admin"])
    response = _post(
        client, "/desk/admin/users", csrf, email="kim@desk.test", name="Kim", role="editor", password="short"
    )
    assert response.status_code == 422
    html = response.text
    assert 'role="alert"' in html
    assert 'autocomplete="new-password" minlength="10" maxlength="256" aria-invalid="true"' in html
    assert 'value="kim@desk.test"' in html
    assert 'value="Kim"' in html
    assert '<option value="editor" selected>' in html
    assert 'value="short"' not in html  # the password is not echoed
    # A taken email is refused by the service, in place.
    response = _post(client, "/desk/admin/users", csrf, email=people["checker"].email, name="Dup", role="viewer")
    assert response.status_code == 409
    assert "already exists" in response.text


def test_the_last_admin_cannot_step_down_and_sees_why(client: TestClient, people: dict[str, DeskPerson]) -> None:
    admin = people["admin"]
    csrf = sign_in(client, admin)
    response = _post(client, f"/desk/admin/users/{admin.id}/role", csrf, role="editor")
    assert response.status_code == 409
    html = response.text
    assert "last active admin" in html
    assert 'role="alert"' in html
    assert '<option value="editor" selected>' in html  # what was chosen stays chosen
    response = _post(client, f"/desk/admin/users/{admin.id}/active", csrf, active="false")
    assert response.status_code == 409
    assert "last active admin" in response.text
    assert client.get("/api/v1/me", headers=admin.headers).json()["role"] == "admin"


def test_setting_a_password_ends_that_users_sessions(
    client: TestClient, app: Any, people: dict[str, DeskPerson]
) -> None:
    csrf = sign_in(client, people["admin"])
    checker = people["checker"]
    with TestClient(app) as other:
        sign_in(other, checker)
        response = _post(client, f"/desk/admin/users/{checker.id}/password", csrf, password="tiny")
        assert response.status_code == 422
        assert 'value="tiny"' not in response.text
        response = _post(client, f"/desk/admin/users/{checker.id}/password", csrf, password=NEW_PASSWORD)
        assert response.status_code == 303
        assert "Password set" in client.get(response.headers["location"]).text
        assert other.get("/desk/", follow_redirects=False).status_code == 303
        sign_in(other, DeskPerson(checker.person, NEW_PASSWORD))


# --- API keys ----------------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_works_and_revoking_stops_it(
    client: TestClient, people: dict[str, DeskPerson], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    csrf = sign_in(client, people["admin"])
    checker = people["checker"]
    response = _post(client, f"/desk/admin/users/{checker.id}/keys", csrf, name="newsroom bot")
    assert response.status_code == 201
    found = re.search(r'id="new-key" class="secret" type="text" readonly value="(cdk_[^"]+)"', response.text)
    assert found, response.text
    key = found.group(1)
    assert 'data-copy="new-key"' in response.text
    assert "set-cookie" not in response.headers  # not kept in the session
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    assert me.json()["id"] == checker.id
    # Shown once: the page never shows it again.
    page = client.get(f"/desk/admin/users/{checker.id}").text
    assert key not in page
    assert "newsroom bot" in page
    assert key not in caplog.text

    key_id = me.json()["api_key_id"]
    response = _post(client, f"/desk/admin/keys/{key_id}/revoke", csrf)
    assert response.status_code == 303
    assert "Key revoked" in client.get(response.headers["location"]).text
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert client.get("/api/v1/me", headers=checker.headers).status_code == 200  # the other key still works


def test_a_key_with_a_past_expiry_is_refused_in_place(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["admin"])
    checker = people["checker"]
    response = _post(client, f"/desk/admin/users/{checker.id}/keys", csrf, name="old", expires_at="2001-01-01T00:00")
    assert response.status_code == 422
    assert 'name="expires_at" type="datetime-local" value="2001-01-01T00:00" aria-invalid="true"' in response.text
    assert 'id="key-name" name="name" type="text" maxlength="200" autocomplete="off" value="old"' in response.text
    assert "New key: copy it now" not in response.text


def test_an_admin_cannot_revoke_their_own_last_key(client: TestClient, people: dict[str, DeskPerson]) -> None:
    admin = people["admin"]
    csrf = sign_in(client, admin)
    key_id = client.get("/api/v1/me", headers=admin.headers).json()["api_key_id"]
    response = _post(client, f"/desk/admin/keys/{key_id}/revoke", csrf)
    assert response.status_code == 409
    assert "last working key" in response.text
    assert 'role="alert"' in response.text
    assert client.get("/api/v1/me", headers=admin.headers).status_code == 200
    assert _post(client, "/desk/admin/keys/999999/revoke", csrf).status_code == 404


# --- webhooks -----------------------------------------------------------------------------------------


def _delivery_attempts(html: str, delivery_id: str) -> int:
    found = re.search(rf"#{delivery_id} · (\d+) attempts?", html)
    assert found, html
    return int(found.group(1))


def test_webhook_create_log_and_redeliver(
    client: TestClient,
    people: dict[str, DeskPerson],
    receiver: Receiver,
    database: Database,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = people["admin"]
    csrf = sign_in(client, admin)
    response = _post(
        client,
        "/desk/admin/webhooks",
        csrf,
        url=receiver.url("/ok"),
        description="newsroom",
        events=["claim.published", "webhook.ping"],
    )
    assert response.status_code == 201, response.text
    found = re.search(r'id="secret" class="secret" type="text" readonly value="(whsec_[^"]+)"', response.text)
    assert found
    secret = found.group(1)
    assert "Endpoint created" in response.text
    hooks = client.get("/api/v1/webhooks", headers=admin.headers).json()["items"]
    assert [(h["url"], h["events"]) for h in hooks] == [(receiver.url("/ok"), ["claim.published", "webhook.ping"])]
    hook_id = hooks[0]["id"]
    page_url = f"/desk/admin/webhooks/{hook_id}"
    assert secret not in client.get(page_url).text
    assert secret not in client.get("/desk/admin/webhooks").text
    assert receiver.url("/ok") in client.get("/desk/admin/webhooks").text

    # Nothing is sent without a worker: the ping waits as pending.
    response = _post(client, f"{page_url}/ping", csrf)
    assert response.status_code == 303
    html = client.get(response.headers["location"]).text
    assert "Ping queued" in html
    delivery_id = re.search(r'id="delivery-(\d+)"', html).group(1)  # type: ignore[union-attr]
    assert _delivery_attempts(html, delivery_id) == 0
    assert "Pending" in html
    assert receiver.paths == []

    run_pass(database, settings)
    html = client.get(page_url).text
    assert receiver.paths == ["/ok"]
    assert _delivery_attempts(html, delivery_id) == 1
    assert "Delivered" in html
    assert "<td>200</td>" in html
    assert re.search(r"<td>\d+ ms</td>", html)

    response = _post(client, f"{page_url}/deliveries/{delivery_id}/redeliver", csrf)
    assert response.status_code == 303
    assert response.headers["location"] == f"{page_url}?ok=redelivered#delivery-{delivery_id}"
    run_pass(database, settings)
    html = client.get(page_url).text
    assert _delivery_attempts(html, delivery_id) == 2
    assert receiver.paths == ["/ok", "/ok"]
    log = client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=admin.headers).json()["items"]
    assert [a["status_code"] for a in log[0]["attempts"]] == [200, 200]
    # The state filter.
    assert 'id="delivery-' not in client.get(f"{page_url}?state=failed").text
    assert f'id="delivery-{delivery_id}"' in client.get(f"{page_url}?state=delivered").text

    # Rotating shows the new secret once.
    response = _post(client, f"{page_url}/rotate", csrf)
    assert response.status_code == 200
    new_secret = re.search(r'id="secret" class="secret" type="text" readonly value="(whsec_[^"]+)"', response.text)
    assert new_secret
    assert new_secret.group(1) != secret
    assert "signs alongside until" in response.text
    assert new_secret.group(1) not in client.get(page_url).text
    assert secret not in caplog.text
    assert new_secret.group(1) not in caplog.text


def test_disable_recover_enable_and_delete(
    client: TestClient, people: dict[str, DeskPerson], receiver: Receiver, database: Database, settings: Settings
) -> None:
    admin = people["admin"]
    csrf = sign_in(client, admin)
    response = _post(client, "/desk/admin/webhooks", csrf, url=receiver.url("/fail"), all_events="true")
    assert response.status_code == 201
    hook_id = client.get("/api/v1/webhooks", headers=admin.headers).json()["items"][0]["id"]
    page_url = f"/desk/admin/webhooks/{hook_id}"
    assert client.get("/api/v1/webhooks", headers=admin.headers).json()["items"][0]["events"] == ["*"]
    assert _post(client, f"{page_url}/ping", csrf).status_code == 303
    for _ in range(3):  # the test schedule: two short gaps, three attempts, then failed
        run_pass(database, settings)
        time.sleep(0.6)
    run_pass(database, settings)
    html = client.get(page_url).text
    assert "Failed" in html
    assert "<td>500</td>" in html
    assert "broken" in html  # the response excerpt

    response = _post(client, f"{page_url}/enabled", csrf, enabled="false")
    assert response.status_code == 303
    assert "Endpoint disabled" in client.get(response.headers["location"]).text
    # A disabled endpoint refuses a ping and a recovery, and says why in place.
    response = _post(client, f"{page_url}/ping", csrf)
    assert response.status_code == 409
    assert "The endpoint is disabled" in response.text
    response = _post(client, f"{page_url}/recover", csrf, since="2000-01-01T00:00")
    assert response.status_code == 409
    assert 'name="since" type="datetime-local" required value="2000-01-01T00:00"' in response.text

    assert _post(client, f"{page_url}/enabled", csrf, enabled="true").status_code == 303
    response = _post(client, f"{page_url}/recover", csrf, since="2000-01-01T00:00")
    assert response.status_code == 303
    html = client.get(response.headers["location"]).text
    assert "1 failed delivery queued again." in html
    log = client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=admin.headers).json()["items"]
    assert log[0]["state"] == "pending"

    response = _post(client, f"{page_url}/delete", csrf)
    assert response.status_code == 303
    assert "Endpoint deleted" in client.get(response.headers["location"]).text
    assert client.get("/api/v1/webhooks", headers=admin.headers).json()["items"] == []
    assert client.get(page_url).status_code == 404


def test_edit_an_endpoint_and_rename_a_user(client: TestClient, people: dict[str, DeskPerson]) -> None:
    admin = people["admin"]
    csrf = sign_in(client, admin)
    assert (
        _post(client, "/desk/admin/webhooks", csrf, url="https://hooks.example.org/a", all_events="true").status_code
        == 201
    )
    hook_id = client.get("/api/v1/webhooks", headers=admin.headers).json()["items"][0]["id"]
    page_url = f"/desk/admin/webhooks/{hook_id}"
    response = _post(
        client,
        page_url,
        csrf,
        url="https://hooks.example.org/b",
        events=["claim.created", "claim.published"],
        description="desk feed",
        format="slack",
    )
    assert response.status_code == 303
    assert "Endpoint saved." in client.get(response.headers["location"]).text
    hook = client.get(f"/api/v1/webhooks/{hook_id}", headers=admin.headers).json()
    assert (hook["url"], hook["events"], hook["description"], hook["format"]) == (
        "https://hooks.example.org/b",
        ["claim.created", "claim.published"],
        "desk feed",
        "slack",
    )
    response = _post(client, page_url, csrf, url="https://hooks.example.org/b", events=["claim.nope"])
    assert response.status_code == 422
    assert "unknown event" in response.text
    assert '<details class="more" open>' in response.text  # the edit form stays open with the problem
    assert client.get(f"/api/v1/webhooks/{hook_id}", headers=admin.headers).json()["events"] == hook["events"]

    checker = people["checker"]
    response = _post(client, f"/desk/admin/users/{checker.id}/name", csrf, name="Ayo B.")
    assert response.status_code == 303
    assert client.get(f"/api/v1/users/{checker.id}", headers=admin.headers).json()["name"] == "Ayo B."
    response = _post(client, f"/desk/admin/users/{checker.id}/name", csrf, name="")
    assert response.status_code == 422
    assert 'id="user-name" name="name" type="text" maxlength="200" value="" aria-invalid="true"' in response.text


def test_a_refused_webhook_keeps_its_fields(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["admin"])
    response = _post(
        client,
        "/desk/admin/webhooks",
        csrf,
        url="http://10.1.2.3/hook",
        description="inside",
        events=["claim.created"],
        format="slack",
    )
    assert response.status_code == 422
    html = response.text
    assert 'role="alert"' in html
    assert 'value="http://10.1.2.3/hook" aria-invalid="true"' in html
    assert 'value="inside"' in html
    assert 'name="events" value="claim.created" checked' in html
    assert '<option value="slack" selected>' in html
    assert "whsec_" not in html
    # No event at all is refused by the API's own rule.
    response = _post(client, "/desk/admin/webhooks", csrf, url="https://hooks.example.org/x")
    assert response.status_code == 422
    assert '<fieldset class="events" aria-invalid="true"' in response.text


def test_every_admin_form_carries_the_token(client: TestClient, people: dict[str, DeskPerson]) -> None:
    admin = people["admin"]
    csrf = sign_in(client, admin)
    response = _post(client, "/desk/admin/webhooks", csrf, url="https://hooks.example.org/x", all_events="true")
    hook_id = client.get("/api/v1/webhooks", headers=admin.headers).json()["items"][0]["id"]
    for path in (
        "/desk/admin",
        f"/desk/admin/users/{admin.id}",
        "/desk/admin/webhooks",
        f"/desk/admin/webhooks/{hook_id}",
    ):
        html = client.get(path).text
        assert html.count('method="post"') == html.count(f'name="csrf" value="{csrf}"'), path
        assert csrf_of(html) == csrf
        # Every input but hidden ones has a label.
        for input_id in re.findall(r'<(?:input|select|textarea) id="([^"]+)"', html):
            assert f'for="{input_id}"' in html, (path, input_id)
    assert response.status_code == 201


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_admin_pages_at_a_phones_width(
    live_url: str,
    phone: Any,  # noqa: F811
    people: dict[str, DeskPerson],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    admin = people["admin"]
    page = phone
    page.goto(f"{live_url}/desk/admin")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(admin.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_url}/desk/admin")
    _fits(page)

    page.get_by_label("Email").fill("lea@desk.test")
    page.get_by_label("Name").fill("Léa Martin")
    page.get_by_label("Role").select_option("editor")
    page.get_by_role("button", name="Create user").click()
    page.wait_for_url(re.compile(r".*/desk/admin/users/\d+\?ok=user_created$"))
    _fits(page)
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("The new API key")
    key = secret.input_value()
    assert key.startswith("cdk_")
    page.get_by_role("button", name="Copy").click()
    page.wait_for_function("document.querySelector('.copy-status').textContent.length > 0")
    _fits(page)
    page.screenshot(path=str(tmp_path / "admin-user.png"), full_page=True)

    page.goto(f"{live_url}/desk/admin/webhooks")
    page.get_by_label("Target URL").fill(receiver.url("/ok"))
    page.get_by_label("webhook.ping").check()
    page.get_by_role("button", name="Create endpoint").click()
    assert page.get_by_label("The signing secret").input_value().startswith("whsec_")
    page.get_by_role("button", name="Send a ping").click()
    page.wait_for_url(re.compile(r".*\?ok=pinged$"))
    _fits(page)
    page.screenshot(path=str(tmp_path / "admin-webhook.png"), full_page=True)
    assert page.js_errors == []
