"""Edges found in review: bad input that used to answer 500, the edit remit, purge leaks, and the
body limit on non-upload routes."""

from __future__ import annotations

import pytest

from tests.helpers import Journey


@pytest.fixture
def j(client, desk) -> Journey:
    return Journey(client, desk)


def test_times_without_zone_are_utc_and_unstorable_times_are_refused(j: Journey) -> None:
    c = j.create(text="Deadline without a zone", due_at="2030-01-02T03:04:05")
    assert c["due_at"].startswith("2030-01-02T03:04:05") and c["due_at"].endswith(("Z", "+00:00"))
    for bad in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        r = j.client.post("/api/v1/claims", json={"text": "x", "due_at": bad}, headers=j.contributor.headers)
        assert r.status_code == 422, bad
    r = j.client.get("/api/v1/claims", params={"created_after": "2020-01-01T00:00:00"}, headers=j.viewer.headers)
    assert r.status_code == 200
    batch = j.client.post(
        "/api/v1/claims:batch",
        json={
            "items": [
                {"text": "a", "appeared_at": "2026-01-01T00:00:00"},
                {"text": "b", "due_at": "9999-12-31T23:59:59-05:00"},
            ]
        },
        headers=j.contributor.headers,
    )
    assert [r["status"] for r in batch.json()["results"]] == [201, 422]


def test_out_of_range_ids_and_cursors(j: Journey) -> None:
    for path in ("/api/v1/claims/999999999999999999", "/api/v1/evidence/3000000000", "/public/fact-checks/3000000000"):
        assert j.client.get(path, headers=j.viewer.headers).status_code == 404, path
    from app.pagination import encode_cursor

    for kind, path in (("claims", "/api/v1/claims"), ("public", "/public/fact-checks")):
        position = 10**30 if kind == "claims" else ["2026-01-01T00:00:00", 1]
        r = j.client.get(path, params={"cursor": encode_cursor(kind, position)}, headers=j.viewer.headers)
        assert r.status_code == 400, path
    assert j.client.get("/api/v1/claims", params={"assignee": "²"}, headers=j.viewer.headers).status_code == 422
    cid = j.to_state("queued")
    r = j.client.post(
        f"/api/v1/claims/{cid}/assignments", json={"user_id": 2**63, "role": "assignee"}, headers=j.editor.headers
    )
    assert r.status_code == 422


def test_edit_remit(j: Journey) -> None:
    cid = j.to_state("in_progress", ready=True)
    assert j.client.patch(f"/api/v1/claims/{cid}", json={"public": True}, headers=j.checker.headers).status_code == 403
    assert j.client.patch(f"/api/v1/claims/{cid}", json={"context": "ok"}, headers=j.checker.headers).status_code == 200
    j.act(cid, "submit", j.checker)
    r = j.client.patch(f"/api/v1/claims/{cid}", json={"text": "changed in review"}, headers=j.editor.headers)
    assert r.status_code == 409, "content is frozen while in review"
    assert j.client.patch(f"/api/v1/claims/{cid}", json={"tags": ["x"]}, headers=j.checker.headers).status_code == 403
    j.act(cid, "approve", j.editor)
    assert j.client.patch(f"/api/v1/claims/{cid}", json={"public": True}, headers=j.checker.headers).status_code == 403
    assert j.get(cid)["public"] is False


def test_purge_leaves_nothing_to_replay_and_events_carry_no_url(j: Journey) -> None:
    cid = j.to_state("in_progress")
    h = {**j.checker.headers, "Idempotency-Key": "k1"}
    body = {"kind": "link", "url": "https://private.example/source-jane", "note": "Jane Doe, phone 555"}
    ev = j.client.post(f"/api/v1/claims/{cid}/evidence", json=body, headers=h).json()
    assert (
        j.client.post(
            f"/api/v1/evidence/{ev['id']}/purge", json={"reason": "protect source"}, headers=j.admin.headers
        ).status_code
        == 200
    )
    again = j.client.post(f"/api/v1/claims/{cid}/evidence", json=body, headers=h)
    assert again.status_code == 201 and again.json()["id"] != ev["id"], "not a replay of the purged item"
    j.client.post(f"/api/v1/evidence/{again.json()['id']}/purge", json={"reason": "again"}, headers=j.admin.headers)
    timeline = j.client.get(f"/api/v1/claims/{cid}/events?limit=200", headers=j.viewer.headers).text
    assert "source-jane" not in timeline and "Jane Doe" not in timeline


def test_multipart_bodies_elsewhere_are_limited_before_auth(client, settings) -> None:
    big = b"x" * (settings.max_json_bytes + 1000)
    r = client.post("/api/v1/claims", files={"file": ("a.bin", big)})
    assert r.status_code == 413


def test_an_editor_who_approved_is_not_offered_approve_again(settings, database, desk) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(settings.model_copy(update={"review_quorum": 2}), database, start_worker=False)
    app.state.owns_database = False
    with TestClient(app) as client:
        j = Journey(client, desk)
        cid = j.to_state("in_review")
        assert "approve" in j.get(cid, j.editor)["allowed_actions"]
        j.act(cid, "approve", j.editor)
        assert "approve" not in j.get(cid, j.editor)["allowed_actions"]
        assert "approve" in j.get(cid, j.editor2)["allowed_actions"]


def test_an_evidence_retry_replays_even_after_the_claim_moved_on(j: Journey) -> None:
    cid = j.to_state("in_progress")
    h = {**j.checker.headers, "Idempotency-Key": "note-after"}
    body = {"kind": "note", "note": "Archive copy matches"}
    first = j.client.post(f"/api/v1/claims/{cid}/evidence", json=body, headers=h)
    assert first.status_code == 201
    j.verdict(cid, j.checker)
    j.act(cid, "submit", j.checker)
    j.act(cid, "approve", j.editor)
    retry = j.client.post(f"/api/v1/claims/{cid}/evidence", json=body, headers=h)
    assert retry.status_code == 201 and retry.json()["id"] == first.json()["id"]
    assert retry.headers["idempotent-replayed"] == "true"
    other = j.client.post(f"/api/v1/claims/{cid}/evidence", json={"kind": "note", "note": "new"}, headers=h)
    assert other.status_code == 422, "the key was used with another body"
