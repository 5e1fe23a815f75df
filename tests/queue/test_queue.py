"""The work queue, leases, re-checks, assignments, comments and the desk overview."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from app.clock import clock
from app.queue.timers import run_timers
from tests.helpers import Journey


@pytest.fixture
def j(client, desk) -> Journey:
    return Journey(client, desk)


def _queued(j: Journey, **body) -> int:
    cid = j.create(**body)["id"]
    j.act(cid, "queue", j.editor)
    return int(cid)


def test_next_hands_out_the_most_urgent_first(j: Journey) -> None:
    now = datetime.now(UTC)
    low = _queued(j, text="low", priority="low")
    normal_late = _queued(j, text="normal, due later", due_at=(now + timedelta(hours=5)).isoformat())
    normal_none = _queued(j, text="normal, no deadline")
    normal_soon = _queued(j, text="normal, due soon", due_at=(now + timedelta(hours=1)).isoformat())
    urgent = _queued(j, text="urgent", priority="urgent")
    expected = [urgent, normal_soon, normal_late, normal_none, low]
    shown = [c["id"] for c in j.client.get("/api/v1/queue", headers=j.checker.headers).json()["items"]]
    assert shown == expected
    taken = []
    for _ in expected:
        r = j.client.post("/api/v1/queue/next", headers=j.checker.headers)
        assert r.status_code == 200
        c = r.json()
        assert c["state"] == "in_progress" and c["assignee_id"] == j.checker.id and c["lease_expires_at"]
        taken.append(c["id"])
    assert taken == expected
    r = j.client.post("/api/v1/queue/next", headers=j.checker.headers)
    assert r.status_code == 204 and r.content == b""
    assert j.client.post("/api/v1/queue/next", headers=j.contributor.headers).status_code == 403
    assert j.client.get("/api/v1/queue", headers=j.viewer.headers).status_code == 403


def test_next_with_tag_filter(j: Journey) -> None:
    _queued(j, text="vote count", tags=["election"])
    flood = _queued(j, text="river level", tags=["flood"])
    r = j.client.post("/api/v1/queue/next", json={"tags": ["flood"]}, headers=j.checker.headers)
    assert r.json()["id"] == flood
    r = j.client.post("/api/v1/queue/next", json={"tags": ["flood"]}, headers=j.checker.headers)
    assert r.status_code == 204
    assert j.client.post("/api/v1/queue/next", json={"tags": "flood"}, headers=j.checker.headers).status_code == 422


def test_queue_paging(j: Journey) -> None:
    ids = [_queued(j, text=f"claim {i}") for i in range(5)]
    r = j.client.get("/api/v1/queue", params={"limit": 2}, headers=j.checker.headers)
    seen = [c["id"] for c in r.json()["items"]]
    while r.json()["next_cursor"]:
        r = j.client.get(
            "/api/v1/queue", params={"limit": 2, "cursor": r.json()["next_cursor"]}, headers=j.checker.headers
        )
        seen += [c["id"] for c in r.json()["items"]]
    assert seen == ids
    assert j.client.get("/api/v1/queue", params={"cursor": "x"}, headers=j.checker.headers).status_code == 400


def test_sixteen_checkers_take_500_claims_each_exactly_once(live_url, desk, database) -> None:
    editor = desk.person("editor")
    checkers = [desk.person("checker") for _ in range(16)]
    with httpx.Client(base_url=live_url, timeout=60, headers=editor.headers) as c:
        r = c.post("/api/v1/claims:batch", json={"items": [{"text": f"Queued claim {i}"} for i in range(500)]})
        ids = [x["claim"]["id"] for x in r.json()["results"]]
    with database.transaction() as s:
        s.execute(sa.text("UPDATE claims SET state = 'queued'"))  # triage in bulk, straight through SQL
    taken: dict[int, list[int]] = {}
    errors: list[str] = []

    def work(n: int) -> None:
        mine: list[int] = []
        with httpx.Client(base_url=live_url, timeout=60, headers=checkers[n].headers) as c:
            while True:
                r = c.post("/api/v1/queue/next")
                if r.status_code == 204:
                    break
                if r.status_code != 200:
                    errors.append(r.text)
                    break
                assert r.json()["assignee_id"] == checkers[n].id
                mine.append(r.json()["id"])
        taken[n] = mine

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert errors == []
    handed = [cid for v in taken.values() for cid in v]
    assert sorted(handed) == sorted(ids), "every claim handed out, none lost"
    assert [cid for cid, n in Counter(handed).items() if n > 1] == [], "no claim handed out twice"
    assert sum(1 for v in taken.values() if v) > 1, "the work was shared"
    with database.read_session() as s:
        rows = s.execute(sa.text("SELECT id, assignee_id FROM claims WHERE state = 'in_progress'")).all()
    owner = {cid: checkers[n].id for n, v in taken.items() for cid in v}
    assert {r.id: r.assignee_id for r in rows} == owner


def test_expired_lease_returns_the_claim_to_the_queue(j: Journey, database, settings) -> None:
    cid = _queued(j, text="abandoned")
    j.client.post("/api/v1/queue/next", headers=j.checker.headers)
    # activity by the assignee renews the lease
    clock.advance(settings.lease_seconds - 60)
    j.client.post(f"/api/v1/claims/{cid}/comments", json={"body": "still on it"}, headers=j.checker.headers)
    clock.advance(120)
    assert run_timers(database, settings).leases_expired == 0
    assert j.get(cid)["state"] == "in_progress"
    # someone else's queue/next does not take it while the lease is live
    assert j.client.post("/api/v1/queue/next", headers=j.checker2.headers).status_code == 204
    clock.advance(settings.lease_seconds + 1)
    assert run_timers(database, settings).leases_expired == 1
    c = j.get(cid)
    assert (c["state"], c["assignee_id"], c["lease_expires_at"]) == ("queued", None, None)
    types = [e["type"] for e in j.client.get(f"/api/v1/claims/{cid}/events", headers=j.viewer.headers).json()["items"]]
    assert "claim.lease_expired" in types
    assert j.client.post("/api/v1/queue/next", headers=j.checker2.headers).json()["id"] == cid


def test_recheck_brings_an_unverified_verdict_back(j: Journey, database, settings) -> None:
    cid = j.to_state("in_progress")
    j.verdict(cid, j.checker, rating="unverified", recheck_at=(clock.now() + timedelta(days=3)).isoformat())
    j.evidence(cid, j.checker)
    j.act(cid, "submit", j.checker)
    j.act(cid, "approve", j.editor)
    clock.advance(2 * 86400)
    assert run_timers(database, settings).rechecks_due == 0
    clock.advance(86400 + 1)
    assert run_timers(database, settings).rechecks_due == 1
    c = j.get(cid)
    assert c["state"] == "queued"
    assert c["published_verdict"]["rating"] == "unverified", "the last published verdict is kept"
    assert c["verdict"]["recheck_at"] is None
    events = j.client.get(f"/api/v1/claims/{cid}/events?limit=100", headers=j.viewer.headers).json()["items"]
    assert [e for e in events if e["type"] == "claim.recheck_due"]
    assert run_timers(database, settings).rechecks_due == 0


def test_assignments(j: Journey) -> None:
    cid = _queued(j, text="assign me")
    url = f"/api/v1/claims/{cid}/assignments"
    inactive = j.client.post(
        "/api/v1/users", json={"email": "gone@desk.test", "name": "Gone", "role": "checker"}, headers=j.admin.headers
    ).json()
    j.client.patch(f"/api/v1/users/{inactive['id']}", json={"active": False}, headers=j.admin.headers)
    assert (
        j.client.post(url, json={"user_id": j.viewer.id, "role": "assignee"}, headers=j.editor.headers).status_code
        == 422
    )
    assert (
        j.client.post(url, json={"user_id": inactive["id"], "role": "assignee"}, headers=j.editor.headers).status_code
        == 422
    )
    assert (
        j.client.post(url, json={"user_id": j.checker.id, "role": "reviewer"}, headers=j.editor.headers).status_code
        == 422
    )
    assert (
        j.client.post(url, json={"user_id": j.checker.id, "role": "assignee"}, headers=j.checker.headers).status_code
        == 403
    )
    r = j.client.post(url, json={"user_id": j.checker.id, "role": "assignee"}, headers=j.editor.headers)
    assert r.status_code == 201 and r.json()["assignee"]["user_id"] == j.checker.id
    assert j.get(cid)["state"] == "in_progress", "assigning a queued claim starts it"
    r = j.client.post(url, json={"user_id": j.editor2.id, "role": "reviewer"}, headers=j.editor.headers)
    assert [x["user_id"] for x in r.json()["reviewers"]] == [j.editor2.id]
    # reassign to another checker
    r = j.client.post(url, json={"user_id": j.checker2.id, "role": "assignee"}, headers=j.editor.headers)
    assert r.json()["assignee"]["user_id"] == j.checker2.id
    # a checker cannot release someone else's claim
    assert j.client.post(f"/api/v1/claims/{cid}/actions/release", headers=j.checker.headers).status_code == 403
    assert j.client.delete(f"{url}/{j.editor2.id}", headers=j.editor.headers).json()["reviewers"] == []
    r = j.client.delete(f"{url}/{j.checker2.id}", headers=j.editor.headers)
    assert r.status_code == 200 and r.json()["assignee"] is None and j.get(cid)["state"] == "queued"
    assert j.client.delete(f"{url}/{j.checker2.id}", headers=j.editor.headers).status_code == 404
    types = [
        e["type"]
        for e in j.client.get(f"/api/v1/claims/{cid}/events?limit=100", headers=j.viewer.headers).json()["items"]
    ]
    assert types.count("claim.assigned") == 3 and types.count("claim.unassigned") >= 3


def test_comments_with_mentions(j: Journey) -> None:
    cid = j.create()["id"]
    url = f"/api/v1/claims/{cid}/comments"
    r = j.client.post(
        url, json={"body": f"@{j.editor.principal.email} please look; cc @nobody@x.test"}, headers=j.checker.headers
    )
    assert r.status_code == 201 and r.json()["mentions"] == [j.editor.id]
    assert j.client.post(url, json={"body": "   "}, headers=j.checker.headers).status_code == 422
    assert j.client.post(url, json={"body": "hi"}, headers=j.contributor.headers).status_code == 403
    assert (
        j.client.post("/api/v1/claims/99999/comments", json={"body": "hi"}, headers=j.checker.headers).status_code
        == 404
    )
    items = j.client.get(url, headers=j.viewer.headers).json()["items"]
    assert [c["author_id"] for c in items] == [j.checker.id]


def test_desk_stats(j: Journey) -> None:
    j.to_state("published")
    j.to_state("in_progress")
    _queued(j, text="late", due_at=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    clock.advance(3600)
    r = j.client.get("/api/v1/desk/stats", headers=j.editor.headers)
    assert r.status_code == 200
    s = r.json()
    assert s["by_state"]["published"] == 1 and s["by_state"]["in_progress"] == 1 and s["by_state"]["queued"] == 1
    assert s["overdue"] == 1
    assert s["oldest_queued_seconds"] >= 3600
    assert s["published_last_7d"] == 1 and s["median_seconds_to_publish_7d"] is not None
    assert s["per_assignee"] == [
        {"user_id": j.checker.id, "name": j.checker.principal.name, "state": "in_progress", "count": 1}
    ]
    assert j.client.get("/api/v1/desk/stats", headers=j.checker.headers).status_code == 403
