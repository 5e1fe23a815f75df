"""Creating, reading, editing and listing claims; bad input changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.clock import clock
from tests.helpers import Journey


@pytest.fixture
def j(client, desk) -> Journey:
    return Journey(client, desk)


def _count(database, table: str) -> int:
    with database.read_session() as s:
        return int(s.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_create_returns_location_etag_and_defaults(j: Journey) -> None:
    r = j.client.post(
        "/api/v1/claims",
        json={
            "text": "  Up to 9,000 homes were flooded ",
            "claimant": "a relief agency",
            "tags": ["Flood", "flood"],
            "priority": "urgent",
            "appearance_url": "https://news.example/a",
            "language": "en",
        },
        headers=j.contributor.headers,
    )
    assert r.status_code == 201
    body = r.json()
    assert r.headers["location"] == f"/api/v1/claims/{body['id']}"
    assert r.headers["etag"] == '"1"'
    assert body["text"] == "Up to 9,000 homes were flooded"
    assert body["tags"] == ["flood"]
    assert (body["state"], body["verdict"], body["public"], body["priority"]) == ("submitted", None, False, "urgent")
    assert body["allowed_actions"] == []  # a contributor cannot move it


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "text"),
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 1001}, "text"),
        ({"text": 42}, "text"),
        ({"text": "ok", "priority": "asap"}, "priority"),
        ({"text": "ok", "colour": "red"}, "colour"),
        ({"text": "ok", "appearance_url": "javascript:alert(1)"}, "appearance_url"),
        ({"text": "ok", "due_at": "tomorrow"}, "due_at"),
        ({"text": "ok", "tags": ["has space"]}, "tags"),
        ({"text": "ok", "tags": ["t"] * 21}, "tags"),
        ({"text": "ok", "language": "english!"}, "language"),
    ],
)
def test_bad_claims_are_refused_and_change_nothing(j: Journey, database, payload: dict, field: str) -> None:
    before = _count(database, "claims"), _count(database, "audit_events"), _count(database, "outbox")
    r = j.client.post("/api/v1/claims", json=payload, headers=j.contributor.headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 422 and problem["title"]
    assert any(field in [str(p) for p in e["loc"]] for e in problem["errors"]), problem
    assert (_count(database, "claims"), _count(database, "audit_events"), _count(database, "outbox")) == before


def test_malformed_json_and_wrong_content(j: Journey) -> None:
    r = j.client.post(
        "/api/v1/claims", content=b"{not json", headers={**j.contributor.headers, "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "json_invalid"
    r = j.client.post(
        "/api/v1/claims", content=b"[1,2]", headers={**j.contributor.headers, "content-type": "application/json"}
    )
    assert r.status_code == 422


def test_oversize_json_body_is_413(client, desk, settings) -> None:
    who = desk.person("contributor")
    big = b'{"text": "' + b"a" * (settings.max_json_bytes + 10) + b'"}'
    r = client.post("/api/v1/claims", content=big, headers={**who.headers, "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")


def test_errors_are_problem_json_everywhere(j: Journey) -> None:
    r = j.client.get("/api/v1/nowhere", headers=j.viewer.headers)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = j.client.delete("/api/v1/claims", headers=j.viewer.headers)
    assert r.status_code == 405 and r.json()["status"] == 405
    r = j.client.get("/api/v1/claims")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = j.client.get("/api/v1/claims", headers={"Authorization": "Bearer cdk_nope"})
    assert r.status_code == 401
    for bad in ("0", "-1", "abc", "1e3", "99999999999999999999"):
        assert j.client.get(f"/api/v1/claims/{bad}", headers=j.viewer.headers).status_code == 404


def test_patch_with_if_match_and_object_rules(j: Journey) -> None:
    cid = j.create()["id"]
    r = j.client.patch(
        f"/api/v1/claims/{cid}", json={"claimant": "the governor"}, headers={**j.editor.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.headers["etag"] == '"2"'
    # stale ETag: 412 and nothing changes
    r = j.client.patch(
        f"/api/v1/claims/{cid}", json={"claimant": "someone"}, headers={**j.editor.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 412 and r.json()["current_version"] == 2
    assert j.get(cid)["claimant"] == "the governor"
    # the contributor who submitted it may edit while submitted; another contributor may not
    other = j.client.patch(f"/api/v1/claims/{cid}", json={"context": "x"}, headers=j.viewer.headers)
    assert other.status_code == 403
    assert (
        j.client.patch(
            f"/api/v1/claims/{cid}", json={"context": "said on radio"}, headers=j.contributor.headers
        ).status_code
        == 200
    )
    j.act(cid, "queue", j.editor)
    assert (
        j.client.patch(f"/api/v1/claims/{cid}", json={"context": "y"}, headers=j.contributor.headers).status_code == 403
    )
    # a checker who is not the assignee may not edit
    assert j.client.patch(f"/api/v1/claims/{cid}", json={"context": "y"}, headers=j.checker.headers).status_code == 403
    j.act(cid, "start", j.checker)
    assert j.client.patch(f"/api/v1/claims/{cid}", json={"context": "y"}, headers=j.checker.headers).status_code == 200
    # unknown fields, null text
    assert (
        j.client.patch(f"/api/v1/claims/{cid}", json={"state": "published"}, headers=j.editor.headers).status_code
        == 422
    )
    assert j.client.patch(f"/api/v1/claims/{cid}", json={"text": None}, headers=j.editor.headers).status_code == 422
    events = j.client.get(f"/api/v1/claims/{cid}/events", headers=j.viewer.headers).json()["items"]
    updated = [e for e in events if e["type"] == "claim.updated"]
    assert updated[0]["data"]["changes"] == {"claimant": [None, "the governor"]}


def test_published_content_is_frozen_but_public_flag_can_change(j: Journey) -> None:
    cid = j.to_state("published")
    r = j.client.patch(f"/api/v1/claims/{cid}", json={"text": "changed"}, headers=j.editor.headers)
    assert r.status_code == 409 and "reopen" in r.json()["allowed_actions"]
    r = j.client.patch(f"/api/v1/claims/{cid}", json={"public": True}, headers=j.editor.headers)
    assert r.status_code == 200 and r.json()["public"] is True


def test_verdict_rules(j: Journey) -> None:
    cid = j.to_state("in_progress")
    j.verdict(cid, j.checker, rating="sort_of", expect=422)
    j.verdict(
        cid, j.checker, rating="false", recheck_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(), expect=422
    )
    j.verdict(
        cid, j.checker, rating="unverified", recheck_at=(datetime.now(UTC) - timedelta(days=1)).isoformat(), expect=422
    )
    j.verdict(cid, j.checker2, expect=403)
    j.verdict(cid, j.viewer, expect=403)
    v = j.verdict(
        cid,
        j.checker,
        rating="unverified",
        confidence="low",
        findings={"location": "confirmed", "date": "unverified"},
        recheck_at=(datetime.now(UTC) + timedelta(days=2)).isoformat(),
    )
    assert v["verdict"]["label"].startswith("Unverified")
    assert v["verdict"]["findings"] == {"location": "confirmed", "date": "unverified"}
    j.verdict(cid, j.checker, findings={"mood": "confirmed"}, expect=422)
    submitted = j.to_state("submitted")
    j.verdict(submitted, j.editor, expect=409)


def test_batch_items_are_independent(j: Journey, database) -> None:
    items = [{"text": "Claim one"}, {"text": ""}, {"text": "Claim three", "priority": "high"}, {"nope": 1}]
    r = j.client.post("/api/v1/claims:batch", json={"items": items}, headers=j.contributor.headers)
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 422, 201, 422]
    assert results[2]["claim"]["priority"] == "high"
    assert results[1]["problem"]["errors"][0]["loc"][:3] == ["body", "items", 1]
    assert _count(database, "claims") == 2
    too_many = {"items": [{"text": "x"}] * 1001}
    assert j.client.post("/api/v1/claims:batch", json=too_many, headers=j.contributor.headers).status_code == 422


def test_a_batch_commits_in_groups(j: Journey, database) -> None:
    from sqlalchemy import event

    from app.claims.router import BATCH_COMMIT_EVERY

    commits: list[int] = []

    def committed(conn) -> None:
        commits.append(1)

    items = [{"text": f"Claim number {i} of the import"} for i in range(2 * BATCH_COMMIT_EVERY + 20)]
    items[BATCH_COMMIT_EVERY] = {"text": ""}  # a refused item counts towards its group all the same
    assert j.client.get("/api/v1/me", headers=j.contributor.headers).status_code == 200  # key's use noted
    event.listen(database.write_engine, "commit", committed)
    try:
        r = j.client.post("/api/v1/claims:batch", json={"items": items}, headers=j.contributor.headers)
    finally:
        event.remove(database.write_engine, "commit", committed)
    assert r.status_code == 200
    assert [x["status"] for x in r.json()["results"]].count(201) == len(items) - 1
    assert len(commits) == 3  # 50 items, 50, then the last 20: one transaction each
    assert _count(database, "claims") == len(items) - 1


def test_another_writer_gets_in_while_a_batch_runs(app, database, desk) -> None:
    """A long batch does not keep other writers out until it ends (on SQLite they take turns on
    one writer: between its groups)."""
    import threading
    import time

    import httpx
    from sqlalchemy import event

    from app.claims.router import BATCH_COMMIT_EVERY
    from tests.conftest import serve_in_thread

    contributor = desk.person("contributor")

    def slow_insert(conn, cursor, statement: str, *args) -> None:
        if statement.startswith("INSERT INTO claims"):
            time.sleep(0.004)  # a batch item's worth of work, made slower so the overlap is sure

    items = [{"text": f"Imported claim number {i}"} for i in range(6 * BATCH_COMMIT_EVERY)]
    done: dict[str, float] = {}
    event.listen(database.write_engine, "before_cursor_execute", slow_insert)
    try:
        with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=contributor.headers, timeout=60) as http:
            assert http.get("/api/v1/me").status_code == 200

            def batch() -> None:
                assert http.post("/api/v1/claims:batch", json={"items": items}).status_code == 200
                done["batch"] = time.monotonic()

            importer = threading.Thread(target=batch)
            importer.start()
            deadline = time.monotonic() + 30
            while _count(database, "claims") < BATCH_COMMIT_EVERY:  # the first group is in
                assert time.monotonic() < deadline and importer.is_alive()
                time.sleep(0.005)
            r = http.post("/api/v1/claims", json={"text": "A single claim sent meanwhile"})
            done["single"] = time.monotonic()
            importer.join(60)
    finally:
        event.remove(database.write_engine, "before_cursor_execute", slow_insert)
    assert r.status_code == 201
    assert done["single"] < done["batch"]
    assert _count(database, "claims") == len(items) + 1


def test_idempotency_key(j: Journey, database) -> None:
    h = {**j.contributor.headers, "Idempotency-Key": "wire-123"}
    a = j.client.post("/api/v1/claims", json={"text": "Same claim"}, headers=h)
    b = j.client.post("/api/v1/claims", json={"text": "Same claim"}, headers=h)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] == b.json()["id"] and b.headers["idempotent-replayed"] == "true"
    assert b.headers["location"] == a.headers["location"]
    c = j.client.post("/api/v1/claims", json={"text": "Another claim"}, headers=h)
    assert c.status_code == 422
    # keys are scoped per API key
    d = j.client.post(
        "/api/v1/claims", json={"text": "Same claim"}, headers={**j.editor.headers, "Idempotency-Key": "wire-123"}
    )
    assert d.status_code == 201 and d.json()["id"] != a.json()["id"]
    assert _count(database, "claims") == 2
    # kept at least 24 hours
    clock.advance(25 * 3600)
    e = j.client.post("/api/v1/claims", json={"text": "Same claim"}, headers=h)
    assert e.json()["id"] == a.json()["id"]


def test_list_filters_and_cursor(j: Journey) -> None:
    ids = [
        j.create(
            text=f"Claim number {i}", tags=["flood"] if i % 2 else ["vote"], claimant="Governor" if i < 3 else None
        )["id"]
        for i in range(7)
    ]
    j.act(ids[0], "queue", j.editor)
    j.act(ids[1], "queue", j.editor)
    j.act(ids[1], "start", j.checker)
    get = lambda **p: j.client.get("/api/v1/claims", params=p, headers=j.viewer.headers)  # noqa: E731
    assert [c["id"] for c in get(state="queued").json()["items"]] == [ids[0]]
    assert {c["id"] for c in get(state=["queued", "in_progress"]).json()["items"]} == {ids[0], ids[1]}
    assert [c["id"] for c in get(tag="flood").json()["items"]] == [ids[5], ids[3], ids[1]]
    assert len(get(claimant="governor").json()["items"]) == 3
    mine = j.client.get("/api/v1/claims", params={"assignee": "me"}, headers=j.checker.headers).json()["items"]
    assert [c["id"] for c in mine] == [ids[1]]
    # keyset paging walks everything exactly once, newest first
    seen, cursor = [], None
    while True:
        page = get(limit=3, **({"cursor": cursor} if cursor else {})).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids, reverse=True)
    assert get(cursor="garbage!").status_code == 400
    assert get(limit=501).status_code == 422
    assert get(state="flying").status_code == 422
    assert get(assignee="someone").status_code == 422


def test_overdue_filter(j: Journey) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    a = j.create(text="Due soon", due_at=soon)["id"]
    j.create(text="No deadline")
    assert j.client.get("/api/v1/claims", params={"overdue": True}, headers=j.viewer.headers).json()["items"] == []
    clock.advance(2 * 3600)
    items = j.client.get("/api/v1/claims", params={"overdue": True}, headers=j.viewer.headers).json()["items"]
    assert [c["id"] for c in items] == [a] and items[0]["overdue"] is True


def test_full_text_search_in_many_scripts(j: Journey) -> None:
    texts = {
        "en": "The dam was built in 1987 according to the ministry",
        "ru": "Плотина была построена в 1987 году",
        "ko": "댐은 1987년에 건설되었다 정부 발표",
        "ar": "تم بناء السد في عام 1987 حسب الوزارة",
        "other": "Turnout reached 61 percent in the capital",
    }
    ids = {k: j.create(text=v)["id"] for k, v in texts.items()}

    def search(q: str) -> set[int]:
        page = j.client.get("/api/v1/claims", params={"q": q}, headers=j.viewer.headers).json()
        return {c["id"] for c in page["items"]}

    assert search("ministry") == {ids["en"]}
    assert search("Плотина") == {ids["ru"]}
    assert search("정부") == {ids["ko"]}
    assert search("الوزارة") == {ids["ar"]}
    assert search("turnout capital") == {ids["other"]}
    assert search("nothing-like-this") == set()


def test_nul_characters_are_refused_everywhere(j: Journey, database) -> None:
    before = _count(database, "claims")
    for body in ({"text": "a\u0000b"}, {"text": "ok", "claimant": "\u0000"}, {"text": "ok", "tags": ["a\u0000"]}):
        r = j.client.post("/api/v1/claims", json=body, headers=j.contributor.headers)
        assert r.status_code == 422 and "NUL" in r.text, body
    assert _count(database, "claims") == before
    cid = j.create()["id"]
    assert j.client.get("/api/v1/claims", params={"q": "a\u0000"}, headers=j.viewer.headers).status_code == 422
    assert j.client.get("/api/v1/claims", params={"claimant": "\u0000"}, headers=j.viewer.headers).status_code == 422
    assert j.client.get("/api/v1/queue", params={"tag": "x\u0000"}, headers=j.checker.headers).status_code == 422
    assert j.client.get("/api/v1/queue", params={"tag": "flood"}, headers=j.checker.headers).status_code == 200
    r = j.client.post(f"/api/v1/claims/{cid}/comments", json={"body": "\u0000"}, headers=j.checker.headers)
    assert r.status_code == 422
    r = j.client.post(
        "/api/v1/users", json={"email": "a\u0000@b.c", "name": "x", "role": "viewer"}, headers=j.admin.headers
    )
    assert r.status_code == 422


def test_a_read_by_id_brings_its_reviewers_in_one_statement(j: Journey, desk) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    cid = j.create()["id"]
    later = desk.person("editor")
    url = f"/api/v1/claims/{cid}/assignments"
    for who in (later, j.editor2):  # added highest id first: shown in id order all the same
        r = j.client.post(url, json={"user_id": who.id, "role": "reviewer"}, headers=j.editor.headers)
        assert r.status_code == 201, r.text
    bare = j.create()["id"]
    statements: list[str] = []

    def seen(conn, cursor, statement: str, *args) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        shown = j.get(cid)
        reads = [s for s in statements if "FROM claims" in s or "FROM claim_reviewers" in s]
        statements.clear()
        alone = j.get(bare)
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert shown["reviewers"] == sorted([later.id, j.editor2.id])
    assert alone["reviewers"] == []
    assert len(reads) == 1, reads  # the claim and its reviewers together
    listed = j.client.get("/api/v1/claims?limit=5", headers=j.viewer.headers).json()["items"]
    assert {c["id"]: c["reviewers"] for c in listed}[cid] == shown["reviewers"]


def test_on_sqlite_a_batch_commits_early_for_a_waiting_writer(j: Journey, database) -> None:
    import threading
    import time

    from sqlalchemy import event

    from app.claims.router import BATCH_COMMIT_AT_LEAST
    from app.db import writer_gate

    if database.is_postgres:
        pytest.skip("SQLite's one writer at a time")
    gate = writer_gate(database.url.removeprefix("sqlite:///"))
    seen: list[int] = []
    inserts = [0]

    def other_writer() -> None:
        with database.transaction() as session:  # waits for the gate
            seen.append(int(session.execute(sa.text("SELECT count(*) FROM claims")).scalar_one()))

    def on_insert(conn, cursor, statement: str, *args) -> None:
        if not statement.startswith("INSERT INTO claims"):
            return
        inserts[0] += 1
        if inserts[0] == 2:  # the batch holds the gate: another writer queues for it
            threading.Thread(target=other_writer).start()
            deadline = time.monotonic() + 10
            while gate.waiting == 0:
                assert time.monotonic() < deadline
                time.sleep(0.001)

    items = [{"text": f"Imported claim number {i}"} for i in range(20)]
    event.listen(database.write_engine, "before_cursor_execute", on_insert)
    try:
        r = j.client.post("/api/v1/claims:batch", json={"items": items}, headers=j.contributor.headers)
    finally:
        event.remove(database.write_engine, "before_cursor_execute", on_insert)
    assert r.status_code == 200
    # It got in after the first BATCH_COMMIT_AT_LEAST items, not after a group of 50 (or the batch).
    assert seen == [BATCH_COMMIT_AT_LEAST]
    assert _count(database, "claims") == len(items)
