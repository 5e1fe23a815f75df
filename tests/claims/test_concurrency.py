"""16 threads editing and moving the same claims through a real server: no acknowledged update is
lost, and every claim's history follows the transition table without a gap."""

from __future__ import annotations

import random
import threading
from collections import defaultdict

import httpx
import sqlalchemy as sa

from app.audit.service import verify_chains
from app.claims.states import TRANSITIONS, Action, State

THREADS = 16
ROUNDS = 20
CLAIMS = 4
MOVES = {
    "submitted": ["queue", "reject"],
    "queued": ["start", "reject"],
    "in_progress": ["release"],
    "rejected": ["restore"],
}


def test_concurrent_edits_and_transitions(live_url, desk, database) -> None:
    editors = [desk.person("editor") for _ in range(THREADS)]
    with httpx.Client(base_url=live_url, timeout=30) as c:
        ids = [
            c.post(
                "/api/v1/claims", json={"text": f"Shared claim {i}", "context": ""}, headers=editors[0].headers
            ).json()["id"]
            for i in range(CLAIMS)
        ]
    acknowledged: dict[int, list[str]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        rng = random.Random(n)
        who = editors[n]
        with httpx.Client(base_url=live_url, timeout=30, headers=who.headers) as c:
            for i in range(ROUNDS):
                cid = rng.choice(ids)
                r = c.get(f"/api/v1/claims/{cid}")
                if r.status_code != 200:
                    errors.append(f"GET {r.status_code}")
                    continue
                claim, etag = r.json(), r.headers["etag"]
                if rng.random() < 0.6:
                    mark = f"t{n}r{i}"
                    r = c.patch(
                        f"/api/v1/claims/{cid}",
                        json={"context": (claim["context"] or "") + " " + mark},
                        headers={"If-Match": etag},
                    )
                    if r.status_code == 200:
                        with lock:
                            acknowledged[cid].append(mark)
                    elif r.status_code not in (409, 412):  # 409: content frozen while rejected
                        errors.append(f"PATCH {r.status_code} {r.text}")
                else:
                    action = rng.choice(MOVES.get(claim["state"], ["queue"]))
                    body = {"reason": "triage"} if action == "reject" else None
                    r = c.post(f"/api/v1/claims/{cid}/actions/{action}", json=body, headers={"If-Match": etag})
                    if r.status_code not in (200, 409, 412):
                        errors.append(f"{action} {r.status_code} {r.text}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sum(len(v) for v in acknowledged.values()) > THREADS  # the test did real work

    with httpx.Client(base_url=live_url, timeout=30, headers=editors[0].headers) as c:
        for cid in ids:
            claim = c.get(f"/api/v1/claims/{cid}").json()
            words = set((claim["context"] or "").split())
            lost = [m for m in acknowledged[cid] if m not in words]
            assert lost == [], f"claim {cid} lost acknowledged edits {lost}"
            events = c.get(f"/api/v1/claims/{cid}/events", params={"limit": 500}).json()["items"]
            state = State.submitted
            for e in events:
                if e["type"] != "claim.state_changed":
                    continue
                transition = TRANSITIONS[Action(e["data"]["action"])]
                assert e["data"]["from"] == state, f"claim {cid}: a gap in its history"
                assert State(e["data"]["from"]) in transition.sources
                assert e["data"]["to"] == transition.target
                state = State(e["data"]["to"])
            assert claim["state"] == state
            versions = [e for e in events if e["type"] in ("claim.updated", "claim.state_changed")]
            assert claim["version"] >= len(versions)
    with database.read_session() as s:
        checked, problems = verify_chains(s)
        assert problems == [] and checked > 0
        dupes = s.execute(
            sa.text("SELECT subject, seq, count(*) FROM audit_events GROUP BY subject, seq HAVING count(*) > 1")
        ).all()
        assert dupes == []


def test_concurrent_retries_with_one_idempotency_key_create_one_claim(live_url, desk, database) -> None:
    tool = desk.person("contributor")
    statuses: list[tuple[int, int | None]] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=live_url, timeout=30) as c:
            r = c.post(
                "/api/v1/claims",
                json={"text": "Retried while in flight"},
                headers={**tool.headers, "Idempotency-Key": "burst-1"},
            )
            with lock:
                statuses.append((r.status_code, r.json().get("id") if r.status_code == 201 else None))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(statuses) == 8
    # each retry either replays the first answer or is told the first is still running
    assert {s for s, _ in statuses} <= {201, 409}
    ids = {i for s, i in statuses if s == 201}
    assert len(ids) == 1
    with database.read_session() as s:
        assert s.execute(sa.text("SELECT count(*) FROM claims")).scalar_one() == 1
