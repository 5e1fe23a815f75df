"""Health, readiness, metrics, request ids, security headers, OpenAPI, the CLI and the audit chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from app.audit.service import verify_chains
from tests.helpers import Journey

ROOT = Path(__file__).resolve().parents[1]


def test_health_ready_metrics(client, desk) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    who = desk.person("viewer")
    client.get("/api/v1/claims", headers=who.headers)
    text = client.get("/metrics").text
    assert 'claimdesk_http_requests_total{method="GET",route="/api/v1/claims",status="200"}' in text
    assert "claimdesk_http_request_duration_seconds_bucket" in text


def test_readyz_reports_a_schema_behind_head(client, database) -> None:
    with database.transaction() as s:
        s.execute(sa.text("UPDATE alembic_version SET version_num = 'behind'"))
    r = client.get("/readyz")
    assert r.status_code == 503 and "claimdesk migrate" in r.json()["detail"]


def test_request_id_and_security_headers(client) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 16


def test_request_id_is_on_the_audit_event(client, desk, database) -> None:
    who = desk.person("contributor")
    client.post("/api/v1/claims", json={"text": "x"}, headers={**who.headers, "X-Request-ID": "req-42"})
    with database.read_session() as s:
        assert (
            s.execute(sa.text("SELECT request_id FROM audit_events WHERE type='claim.created'")).scalar_one()
            == "req-42"
        )


def test_openapi_documents_routes_errors_and_examples(client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/claims",
        "/api/v1/claims/{claim_id}",
        "/api/v1/claims/{claim_id}/actions/{action}",
        "/api/v1/queue/next",
        "/api/v1/claims/{claim_id}/evidence",
        "/api/v1/users",
    ):
        assert path in paths
    create = paths["/api/v1/claims"]["post"]
    assert create["description"] and "application/problem+json" in create["responses"]["422"]["content"]
    upload = paths["/api/v1/claims/{claim_id}/evidence"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(upload)
    assert spec["components"]["schemas"]["ClaimCreate"]["properties"]["text"]["examples"]


def test_audit_chain_detects_tampering_and_removal(client, desk, database) -> None:
    j = Journey(client, desk)
    cid = j.to_state("published")
    with database.read_session() as s:
        checked, problems = verify_chains(s)
    assert checked > 10 and problems == []
    with database.transaction() as s:
        s.execute(
            sa.text("UPDATE audit_events SET data = :d WHERE claim_id = :c AND seq = 3"),
            {"d": json.dumps({"tampered": True}), "c": cid},
        )
    with database.read_session() as s:
        _, problems = verify_chains(s)
    assert [(p.subject, p.seq) for p in problems] == [(f"claim:{cid}", 3)]
    with database.transaction() as s:
        s.execute(
            sa.text(
                "DELETE FROM outbox WHERE event_id IN (SELECT id FROM audit_events WHERE claim_id = :c AND seq = 5)"
            ),
            {"c": cid},
        )
        s.execute(sa.text("DELETE FROM audit_events WHERE claim_id = :c AND seq = 5"), {"c": cid})
    with database.read_session() as s:
        _, problems = verify_chains(s)
    assert any(p.seq == 6 and "removed" in p.problem for p in problems)


def _cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_user_create_demo_and_verify(tmp_path) -> None:
    env = {
        **os.environ,
        "CLAIMDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CLAIMDESK_STORAGE": str(tmp_path / "store"),
    }
    assert _cli(["migrate"], env).returncode == 0
    r = _cli(
        ["user", "create", "--email", "ed@desk.test", "--name", "Ed", "--role", "editor", "--password"],
        env,
        stdin="a-long-enough-password\n",
    )
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("cdk_") and " " not in key
    again = _cli(["user", "create", "--email", "ed@desk.test", "--name", "Ed", "--role", "editor"], env)
    assert again.returncode == 1 and "already exists" in again.stderr
    first = _cli(["demo"], env)
    assert first.returncode == 0 and "cdk_" in first.stdout
    second = _cli(["demo"], env)
    assert second.returncode == 0 and "already loaded" in second.stdout
    import sqlite3

    con = sqlite3.connect(tmp_path / "cli.db")
    states = {row[0] for row in con.execute("SELECT DISTINCT state FROM claims")}
    roles = {row[0] for row in con.execute("SELECT DISTINCT role FROM users")}
    con.close()
    assert states == {"submitted", "queued", "in_progress", "in_review", "published", "rejected"}
    assert roles == {"admin", "editor", "checker", "contributor", "viewer"}
    ok = _cli(["audit", "verify"], env)
    assert ok.returncode == 0 and " 0 problems" in ok.stdout
    assert _cli(["evidence", "verify"], env).returncode == 0
    con = sqlite3.connect(tmp_path / "cli.db")
    con.execute("UPDATE audit_events SET type = 'claim.forged' WHERE id = 3")
    con.commit()
    con.close()
    bad = _cli(["audit", "verify"], env)
    assert bad.returncode == 1 and "BROKEN" in bad.stdout


def test_a_bad_setting_stops_the_command_with_one_line_per_problem(tmp_path: Path) -> None:
    env = {**os.environ, "CLAIMDESK_RATE_LIMIT_WRITES": "lots", "CLAIMDESK_LEASE_SECONDS": "0"}
    env["CLAIMDESK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'never.db'}"
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr and len(lines) == 2
    assert lines[0].startswith("error: CLAIMDESK_RATE_LIMIT_WRITES:") and "N/minute" in lines[0]
    assert lines[1].startswith("error: CLAIMDESK_LEASE_SECONDS:")
    assert not (tmp_path / "never.db").exists()


def test_sqlite_commits_reach_the_disk_unless_told_otherwise(tmp_path: Path) -> None:
    from app.db import make_database
    from tests.conftest import make_settings

    url = f"sqlite:///{tmp_path / 'durable.db'}"
    for setting, expected in ((None, 2), ("normal", 1), ("FULL", 2)):
        extra = {} if setting is None else {"sqlite_synchronous": setting}
        database = make_database(make_settings(url, tmp_path, **extra))
        try:
            for engine in (database.write_engine, database.read_engine):
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == expected  # 2 = FULL
        finally:
            database.dispose()


def _serve_and_sign_in_wrongly(tmp_path: Path, extra_env: dict[str, str]) -> str:
    import socket
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "CLAIMDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'proxy.db'}",
        "CLAIMDESK_STORAGE": str(tmp_path / "evidence"),
        "CLAIMDESK_SECRET_KEY": "a-test-key-that-is-long-enough-for-signing",
        **extra_env,
    }
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, log_path.read_text()
                time.sleep(0.2)
            answer = httpx.post(
                f"{base}/desk/signin",
                data={"email": "nobody@desk.test", "password": "not the password"},
                headers={"X-Forwarded-For": "203.0.113.7"},
                timeout=30,
            )
            assert answer.status_code == 401
        finally:
            server.terminate()
            server.wait(timeout=30)
    return log_path.read_text()


def test_forwarded_addresses_are_believed_only_from_named_proxies(tmp_path: Path) -> None:
    trusted = _serve_and_sign_in_wrongly(tmp_path, {"CLAIMDESK_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    assert "'nobody@desk.test' from 203.0.113.7" in trusted
    untrusted = _serve_and_sign_in_wrongly(tmp_path, {})
    assert "'nobody@desk.test' from 127.0.0.1" in untrusted and "203.0.113.7" not in untrusted
