"""SIGKILL the API in the middle of a burst of writes: after a restart on the same database and
evidence folder, every write that was answered 2xx is there, and the integrity checks pass."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.db import make_database
from tests.conftest import _truncate_pg
from tests.evidence.samples import png

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STATES = ["submitted", "queued", "in_progress", "in_review", "published"]
WRITERS = 4


@dataclass
class Acknowledged:
    """Every write the server answered with a 2xx, as the clients saw it."""

    claims: dict[int, str] = field(default_factory=dict)  # id -> furthest state acknowledged
    files: dict[int, str] = field(default_factory=dict)  # evidence id -> sha256 of the bytes sent
    notes: dict[int, str] = field(default_factory=dict)  # evidence id -> note text
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)

    def claim(self, cid: int, state: str) -> None:
        with self.lock:
            self.claims[cid] = state

    def count(self) -> int:
        with self.lock:
            return len(self.claims) + len(self.files) + len(self.notes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "claimdesk"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@contextmanager
def _server(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "claimdesk"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=5) as http:
            while True:
                try:
                    if http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _writer(base: str, keys: dict[str, str], ack: Acknowledged, stop: threading.Event, seed: int) -> None:
    """Claims through the whole workflow, with a file and a note each, until the server dies."""
    rnd = random.Random(seed)
    auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    with httpx.Client(base_url=base, timeout=10) as http:
        try:
            n = 0
            while not stop.is_set():
                n += 1
                r = http.post(
                    "/api/v1/claims",
                    json={"text": f"Writer {seed} claim {n}: {rnd.randint(1, 10**9)} jobs were created"},
                    headers={**auth["contributor"], "Idempotency-Key": f"crash-{seed}-{n}"},
                )
                if r.status_code != 201:
                    ack.errors.append(f"create {r.status_code} {r.text[:200]}")
                    return
                cid = r.json()["id"]
                ack.claim(cid, "submitted")
                for action, who, state in (("queue", "editor", "queued"), ("start", "checker", "in_progress")):
                    r = http.post(f"/api/v1/claims/{cid}/actions/{action}", headers=auth[who])
                    if r.status_code != 200:
                        ack.errors.append(f"{action} {r.status_code} {r.text[:200]}")
                        return
                    ack.claim(cid, state)
                data = png(rnd.randint(1, 40), rnd.randint(1, 40))
                r = http.post(
                    f"/api/v1/claims/{cid}/evidence",
                    files={"file": (f"chart-{seed}-{n}.png", data, "image/png")},
                    headers=auth["checker"],
                )
                if r.status_code != 201:
                    ack.errors.append(f"upload {r.status_code} {r.text[:200]}")
                    return
                sha = hashlib.sha256(data).hexdigest()
                if r.json()["sha256"] != sha:
                    ack.errors.append(f"upload answered sha256 {r.json()['sha256']}, sent {sha}")
                    return
                with ack.lock:
                    ack.files[r.json()["id"]] = sha
                note = f"Writer {seed}, claim {n}: the statistics office says otherwise"
                r = http.post(
                    f"/api/v1/claims/{cid}/evidence", json={"kind": "note", "note": note}, headers=auth["checker"]
                )
                if r.status_code != 201:
                    ack.errors.append(f"note {r.status_code} {r.text[:200]}")
                    return
                with ack.lock:
                    ack.notes[r.json()["id"]] = note
                r = http.put(
                    f"/api/v1/claims/{cid}/verdict",
                    json={"rating": "false", "summary": "The office's figures disagree."},
                    headers=auth["checker"],
                )
                if r.status_code != 200:
                    ack.errors.append(f"verdict {r.status_code} {r.text[:200]}")
                    return
                for action, who, state in (("submit", "checker", "in_review"), ("approve", "editor", "published")):
                    r = http.post(f"/api/v1/claims/{cid}/actions/{action}", headers=auth[who])
                    if r.status_code != 200:
                        ack.errors.append(f"{action} {r.status_code} {r.text[:200]}")
                        return
                    ack.claim(cid, state)
        except httpx.TransportError:
            return  # the server was killed: whatever was not answered was not acknowledged


def test_acknowledged_writes_survive_sigkill(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("postgresql"):
        database = make_database(Settings(_env_file=None, database_url=db_url))  # type: ignore[call-arg]
        _truncate_pg(database)
        database.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
    env.update(
        CLAIMDESK_DATABASE_URL=db_url,
        CLAIMDESK_STORAGE=str(tmp_path / "evidence"),
        CLAIMDESK_RATE_LIMIT_WRITES="0",
        CLAIMDESK_LOG_LEVEL="WARNING",
    )
    assert _cli(["migrate"], env).returncode == 0
    keys: dict[str, str] = {}
    for role in ("contributor", "editor", "checker"):
        made = _cli(["user", "create", "--email", f"{role}@desk.test", "--name", role.title(), "--role", role], env)
        assert made.returncode == 0, made.stderr
        keys[role] = made.stdout.strip().splitlines()[-1]

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    ack = Acknowledged()
    stop = threading.Event()
    with _server(env, port, log) as proc:
        writers = [
            threading.Thread(target=_writer, args=(base, keys, ack, stop, seed), daemon=True) for seed in range(WRITERS)
        ]
        for w in writers:
            w.start()
        # Kill at a random moment once some writes are through: mid-request for some writer, surely.
        deadline = time.monotonic() + 30
        while ack.count() < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.uniform(0.5, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stop.set()
        for w in writers:
            w.join(timeout=30)
        assert not any(w.is_alive() for w in writers)
    assert ack.errors == [], ack.errors
    assert len(ack.claims) >= 5 and ack.files and ack.notes

    with _server(env, port, log), httpx.Client(base_url=base, timeout=30) as http:
        viewer = {"Authorization": f"Bearer {keys['editor']}"}
        for cid, state in ack.claims.items():
            r = http.get(f"/api/v1/claims/{cid}", headers=viewer)
            assert r.status_code == 200, (cid, r.text)
            assert STATES.index(r.json()["state"]) >= STATES.index(state), (cid, r.json()["state"], state)
        for eid, sha in ack.files.items():
            meta = http.get(f"/api/v1/evidence/{eid}", headers=viewer)
            assert meta.status_code == 200 and meta.json()["sha256"] == sha, (eid, meta.text)
            content = http.get(f"/api/v1/evidence/{eid}/content", headers=viewer)
            assert content.status_code == 200 and hashlib.sha256(content.content).hexdigest() == sha
        for eid, note in ack.notes.items():
            r = http.get(f"/api/v1/evidence/{eid}", headers=viewer)
            assert r.status_code == 200 and r.json()["note"] == note, (eid, r.text)
        # The desk goes on working after the crash.
        r = http.post("/api/v1/claims", json={"text": "After the restart"}, headers=viewer)
        assert r.status_code == 201

    if db_url.startswith("sqlite"):
        con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            con.close()
    audit = _cli(["audit", "verify"], env)
    assert audit.returncode == 0 and " 0 problems" in audit.stdout, audit.stdout + audit.stderr
    files = _cli(["evidence", "verify"], env)
    assert files.returncode == 0 and " 0 missing, 0 corrupted" in files.stdout, files.stdout + files.stderr
