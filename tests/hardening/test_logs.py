"""Secrets never reach the logs: a whole session against a real server at DEBUG, uvicorn's access log
on, then every API key, webhook secret, password and Authorization value is looked for in the log
(and in the audit trail and outbox)."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.evidence.samples import png

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


class _Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True
    hits = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "claimdesk"), *args], env=env, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_no_secret_reaches_the_log(tmp_path: Path) -> None:
    receiver = _Receiver(("127.0.0.1", 0), _Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_base = f"http://127.0.0.1:{receiver.server_address[1]}"
    db_path = tmp_path / "logs.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
    env.update(
        CLAIMDESK_DATABASE_URL=f"sqlite:///{db_path}",
        CLAIMDESK_STORAGE=str(tmp_path / "evidence"),
        CLAIMDESK_LOG_LEVEL="DEBUG",
        CLAIMDESK_RATE_LIMIT_WRITES="1000/minute",
        CLAIMDESK_WEBHOOK_ALLOWED_CIDRS="127.0.0.0/8",
        CLAIMDESK_WEBHOOK_RETRY_SCHEDULE="0.2,0.5",
        CLAIMDESK_WORKER_POLL_SECONDS="0.1",
        CLAIMDESK_SECRET_KEY="a-session-signing-key-for-this-test-only-0123456789",
    )
    secrets: dict[str, str] = {"session signing key": env["CLAIMDESK_SECRET_KEY"]}
    side_output = ""

    assert _cli(["migrate"], env).returncode == 0
    admin_password = "correct horse battery staple 1"
    made = _cli(
        ["user", "create", "--email", "admin@desk.test", "--name", "Ada", "--role", "admin", "--password"],
        env,
        stdin=admin_password + "\n",
    )
    assert made.returncode == 0, made.stderr
    admin_key = made.stdout.strip().splitlines()[-1]
    secrets |= {"admin password": admin_password, "admin key": admin_key}
    side_output += made.stderr  # the key belongs on stdout only

    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [
                str(BIN / "python"),
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "debug",
                "--access-log",
            ],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, log_path.read_text()
                time.sleep(0.1)
            secrets |= _session(http, admin_key, hook_base, receiver, secrets)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        receiver.shutdown()
        receiver.server_close()

    log = log_path.read_text(errors="replace")
    # The capture is real: our DEBUG-level run, our access lines and uvicorn's access log are all there.
    assert '"POST /api/v1/claims HTTP/1.1" 201' in log
    assert "POST /api/v1/claims 201" in log
    assert "DEBUG" in log
    for label, value in secrets.items():
        for where, text in (("server log", log), ("CLI stderr", side_output)):
            assert value not in text, f"the {label} is in the {where}"
            # nor its random part alone (a key without cdk_, a secret without whsec_)
            tail = value.split("_", 1)[-1]
            if len(tail) >= 16:
                assert tail not in text, f"the {label} (without its prefix) is in the {where}"

    engine = sa.create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            trail = [
                str(row)
                for table in ("audit_events", "outbox")
                for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
            ]
    finally:
        engine.dispose()
    assert len(trail) > 20
    joined = "\n".join(trail)
    for label, value in secrets.items():
        assert value not in joined, f"the {label} is in the audit trail or outbox"


def _session(
    http: httpx.Client, admin_key: str, hook_base: str, receiver: _Receiver, known: dict[str, str]
) -> dict[str, str]:
    """A realistic afternoon on the desk; returns every secret it saw."""
    found: dict[str, str] = {}
    admin = {"Authorization": f"Bearer {admin_key}"}
    people: dict[str, dict[str, str]] = {}
    for role in ("editor", "checker", "contributor"):
        password = f"{role}-password-{role[::-1]}-42"
        r = http.post(
            "/api/v1/users",
            json={"email": f"{role}@desk.test", "name": role.title(), "role": role, "password": password},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        uid = r.json()["id"]
        r = http.post(f"/api/v1/users/{uid}/api-keys", json={"name": "laptop"}, headers=admin)
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        found[f"{role} password"] = password
        found[f"{role} key"] = key
        people[role] = {"Authorization": f"Bearer {key}"}
        new_password = f"{role}-changed-password-7788"
        assert http.patch(f"/api/v1/users/{uid}", json={"password": new_password}, headers=admin).status_code == 200
        found[f"{role} new password"] = new_password
    # A spare key, revoked; a wrong key and a wrong password are presented too.
    r = http.post(f"/api/v1/users/{1}/api-keys", json={"name": "spare"}, headers=admin)
    assert r.status_code == 201
    found["revoked key"] = r.json()["key"]
    assert http.delete(f"/api/v1/api-keys/{r.json()['id']}", headers=admin).status_code == 200
    found["unknown key"] = "cdk_" + "Zq7" * 14
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {found['unknown key']}"}).status_code == 401
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {found['revoked key']}"}).status_code == 401
    short = http.post(
        "/api/v1/users",
        json={"email": "x@desk.test", "name": "X", "role": "viewer", "password": "short-pw9"},
        headers=admin,
    )
    assert short.status_code == 422
    found["refused password"] = "short-pw9"

    # The workflow with evidence.
    r = http.post(
        "/api/v1/claims",
        json={"text": "Nine in ten bridges are unsafe", "public": True},
        headers={**people["contributor"], "Idempotency-Key": "logs-test-1"},
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert http.post(f"/api/v1/claims/{cid}/actions/queue", headers=people["editor"]).status_code == 200
    assert http.post(f"/api/v1/claims/{cid}/actions/start", headers=people["checker"]).status_code == 200
    up = http.post(
        f"/api/v1/claims/{cid}/evidence",
        files={"file": ("survey.png", png(), "image/png")},
        data={"note": "The ministry's survey table"},
        headers=people["checker"],
    )
    assert up.status_code == 201, up.text
    assert http.get(f"/api/v1/evidence/{up.json()['id']}/content", headers=people["checker"]).status_code == 200
    r = http.put(
        f"/api/v1/claims/{cid}/verdict",
        json={"rating": "false", "summary": "The survey says one in ten."},
        headers=people["checker"],
    )
    assert r.status_code == 200, r.text

    # Webhooks: a signing secret at registration and another at rotation; a Slack-style URL whose
    # path is itself a credential.
    slack_token = "XoXbSlackPathToken0123456789abcd"
    found["slack url token"] = slack_token
    r = http.post("/api/v1/webhooks", json={"url": f"{hook_base}/hooks", "events": ["*"]}, headers=admin)
    assert r.status_code == 201, r.text
    hook = r.json()
    found["webhook secret"] = hook["secret"]
    r = http.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=admin)
    assert r.status_code == 200, r.text
    found["rotated webhook secret"] = r.json()["secret"]
    r = http.post(
        "/api/v1/webhooks",
        json={"url": f"{hook_base}/services/T01/B02/{slack_token}", "events": ["*"], "format": "slack"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    found["slack webhook secret"] = r.json()["secret"]
    assert http.post(f"/api/v1/webhooks/{hook['id']}/ping", headers=admin).status_code in (200, 201, 202)
    assert http.post(f"/api/v1/claims/{cid}/actions/submit", headers=people["checker"]).status_code == 200
    assert http.post(f"/api/v1/claims/{cid}/actions/approve", headers=people["editor"]).status_code == 200

    # The browser desk, when it exists: sign in with a password.
    if http.get("/desk/signin").status_code == 200:
        r = http.post(
            "/desk/signin",
            data={"email": "editor@desk.test", "password": found["editor new password"], "next": "/desk/"},
            headers={"Origin": str(http.base_url).rstrip("/")},
        )
        assert r.status_code == 303, r.text[:500]
        assert http.get("/desk/").status_code == 200
        found |= {f"desk cookie {name}": value for name, value in http.cookies.items()}
        http.cookies.clear()
        r = http.post(
            "/desk/signin",
            data={"email": "editor@desk.test", "password": "a-wrong-password-for-the-log"},
            headers={"Origin": str(http.base_url).rstrip("/")},
        )
        assert r.status_code == 401, r.text[:500]
        found["wrong desk password"] = "a-wrong-password-for-the-log"

    # Let the worker deliver (the HTTP client's own logging would show URLs and headers).
    deadline = time.monotonic() + 30
    while receiver.hits < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receiver.hits >= 6
    return found


def test_chatty_libraries_stay_quiet_at_debug() -> None:
    import logging

    from app.observability import QUIET_LIBRARIES, configure_logging

    root = logging.getLogger()
    before = root.level
    try:
        configure_logging("DEBUG")
        assert root.getEffectiveLevel() == logging.DEBUG
        for name in (*QUIET_LIBRARIES, "botocore.endpoint", "httpx._client", "sqlalchemy.engine.Engine"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    finally:
        root.setLevel(before)


def test_keys_secrets_and_authorization_values_are_masked_in_lines_and_tracebacks() -> None:
    import logging

    from app.auth.keys import new_key
    from app.observability import JsonFormatter, RedactSecretsFilter
    from app.webhooks.signing import new_secret

    key, secret = new_key(), new_secret()
    try:
        raise RuntimeError(f"INSERT failed [parameters: ('{secret}', 'Bearer {key}')]")
    except RuntimeError:
        record = logging.LogRecord(
            "claimdesk", logging.ERROR, __file__, 1, "key %s used by %s", (key, key[:12]), sys.exc_info()
        )
    assert RedactSecretsFilter().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert key not in text and secret not in text and key.split("_", 1)[1] not in text
    assert secret.split("_", 1)[1] not in text
    assert key[:12] in text  # the display prefix stays: it is how keys are told apart
    assert "cdk_[redacted]" in text and "whsec_[redacted]" in text and "Bearer [redacted]" in text
    as_json = JsonFormatter().format(record)  # CLAIMDESK_LOG_JSON=true
    assert key not in as_json and secret not in as_json and "whsec_[redacted]" in as_json
