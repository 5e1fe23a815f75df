"""The workflow over HTTP, on both databases: every (state, action) pair, roles, four eyes, quorum,
the documented order of checks, corrections, and the audit timeline."""

from __future__ import annotations

import pytest

from app.claims.states import TRANSITIONS, State
from app.main import create_app
from tests.conftest import make_settings
from tests.helpers import Journey

USER_ACTIONS = [a.value for a, t in TRANSITIONS.items() if t.role is not None]
ALLOWED = {(a.value, s.value) for a, t in TRANSITIONS.items() if t.role is not None for s in t.sources}
AFTER = {
    "queue": "queued",
    "reject": "rejected",
    "restore": "submitted",
    "start": "in_progress",
    "release": "queued",
    "submit": "in_review",
    "request_changes": "in_progress",
    "approve": "published",
    "reopen": "in_progress",
}


@pytest.fixture
def j(client, desk) -> Journey:
    return Journey(client, desk)


def _actor(j: Journey, action: str):
    # The checker is the assignee and the verdict's author; editor2 approves (four eyes).
    return {"start": j.checker2, "release": j.checker, "submit": j.checker}.get(action, j.editor2)


def _body(action: str) -> dict:
    return {
        "reject": {"reason": "Out of scope."},
        "reopen": {"reason": "New footage."},
        "request_changes": {"comment": "Source the date."},
    }.get(action, {})


@pytest.mark.parametrize("state", [s.value for s in State])
def test_every_state_and_action_over_http(j: Journey, state: str) -> None:
    for action in USER_ACTIONS:
        cid = j.to_state(state, ready=True)
        before = j.get(cid)
        r = j.client.post(
            f"/api/v1/claims/{cid}/actions/{action}", json=_body(action) or None, headers=_actor(j, action).headers
        )
        if (action, state) in ALLOWED:
            assert r.status_code == 200, (state, action, r.text)
            assert r.json()["state"] == AFTER[action]
            assert r.json()["version"] > before["version"]
        else:
            assert r.status_code == 409, (state, action, r.text)
            problem = r.json()
            assert r.headers["content-type"].startswith("application/problem+json")
            assert problem["allowed_actions"] == [a for a in USER_ACTIONS if (a, state) in ALLOWED]
            after = j.get(cid)
            assert (after["state"], after["version"]) == (state, before["version"])


def test_roles_refused_with_403_before_the_claim_is_looked_up(j: Journey) -> None:
    cid = j.to_state("submitted")
    for action in ("queue", "reject", "restore", "request_changes", "approve", "reopen"):
        r = j.client.post(f"/api/v1/claims/{cid}/actions/{action}", headers=j.checker.headers)
        assert r.status_code == 403, action
    for action in ("start", "submit", "release"):
        r = j.client.post(f"/api/v1/claims/{cid}/actions/{action}", headers=j.contributor.headers)
        assert r.status_code == 403
    # role before existence: an unknown claim still gets 403 for a role that may not
    assert j.client.post("/api/v1/claims/999999/actions/queue", headers=j.viewer.headers).status_code == 403
    assert j.client.post("/api/v1/claims/999999/actions/queue", headers=j.editor.headers).status_code == 404
    assert j.client.post("/api/v1/claims/abc/actions/queue", headers=j.editor.headers).status_code == 404
    assert j.client.post(f"/api/v1/claims/{cid}/actions/fly", headers=j.editor.headers).status_code == 404
    assert j.client.post(f"/api/v1/claims/{cid}/actions/expire_lease", headers=j.admin.headers).status_code == 403
    assert j.client.post(f"/api/v1/claims/{cid}/actions/queue").status_code == 401
    assert j.get(cid)["state"] == "submitted"


def test_object_rules_and_preconditions_in_order(j: Journey) -> None:
    cid = j.to_state("in_progress")
    # 403 object rule: another checker may not submit or release
    assert j.client.post(f"/api/v1/claims/{cid}/actions/submit", headers=j.checker2.headers).status_code == 403
    assert j.client.post(f"/api/v1/claims/{cid}/actions/release", headers=j.checker2.headers).status_code == 403
    # 409 preconditions: verdict and evidence missing
    r = j.client.post(f"/api/v1/claims/{cid}/actions/submit", headers=j.checker.headers)
    assert r.status_code == 409 and r.json()["missing"] == ["verdict", "evidence"]
    j.verdict(cid, j.checker)
    r = j.client.post(f"/api/v1/claims/{cid}/actions/submit", headers=j.checker.headers)
    assert r.json()["missing"] == ["evidence"]
    ev = j.evidence(cid, j.checker)
    j.client.post(f"/api/v1/evidence/{ev['id']}/retract", json={"reason": "wrong file"}, headers=j.checker.headers)
    r = j.client.post(f"/api/v1/claims/{cid}/actions/submit", headers=j.checker.headers)
    assert r.status_code == 409 and r.json()["missing"] == ["evidence"], "a retracted item does not count"
    j.evidence(cid, j.checker)
    j.act(cid, "submit", j.checker)
    # the verdict is frozen in review
    j.verdict(cid, j.editor, rating="confirmed", expect=409)
    # 422 comes last: request_changes without a comment
    r = j.client.post(f"/api/v1/claims/{cid}/actions/request_changes", json={}, headers=j.editor.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "comment"]
    # an editor who is the verdict's author cannot approve (403), whatever else holds
    cid2 = j.to_state("queued")
    j.act(cid2, "start", j.editor)
    j.verdict(cid2, j.editor)
    j.evidence(cid2, j.editor)
    j.act(cid2, "submit", j.editor)
    r = j.client.post(f"/api/v1/claims/{cid2}/actions/approve", headers=j.editor.headers)
    assert r.status_code == 403 and "Four eyes" in r.json()["detail"]
    assert "approve" not in j.get(cid2, j.editor)["allowed_actions"]
    assert "approve" in j.get(cid2, j.editor2)["allowed_actions"]
    j.act(cid2, "approve", j.editor2)


def test_reasons_required(j: Journey) -> None:
    cid = j.to_state("submitted")
    r = j.client.post(f"/api/v1/claims/{cid}/actions/reject", json={"reason": "   "}, headers=j.editor.headers)
    assert r.status_code == 422
    pub = j.to_state("published")
    assert j.client.post(f"/api/v1/claims/{pub}/actions/reopen", headers=j.editor.headers).status_code == 422
    assert j.get(pub)["state"] == "published"


def test_reopen_keeps_a_corrections_log_and_republish(j: Journey, database) -> None:
    from app.claims.models import ClaimCorrection

    cid = j.to_state("published")
    first = j.get(cid)["published_verdict"]
    assert first["rating"] == "false" and first["approved_by"] == [j.editor.id]
    c = j.act(cid, "reopen", j.editor2, reason="A second video surfaced.")
    assert c["assignee_id"] == j.editor2.id and c["state"] == "in_progress"
    assert c["published_verdict"] == first, "the last published verdict stays while reopened"
    j.verdict(cid, j.editor2, rating="misleading")
    j.act(cid, "submit", j.editor2)
    j.act(cid, "approve", j.editor)
    final = j.get(cid)
    assert final["published_verdict"]["rating"] == "misleading"
    with database.read_session() as s:
        rows = s.query(ClaimCorrection).filter_by(claim_id=cid).all()
    assert len(rows) == 1
    assert rows[0].previous_verdict["rating"] == "false"
    assert rows[0].reason == "A second video surfaced."
    assert rows[0].republished_verdict["rating"] == "misleading"
    types = [
        e["type"]
        for e in j.client.get(f"/api/v1/claims/{cid}/events?limit=500", headers=j.viewer.headers).json()["items"]
    ]
    assert types.count("claim.published") == 2 and "claim.reopened" in types


def test_request_changes_clears_approvals_and_keeps_assignee(j: Journey) -> None:
    cid = j.to_state("in_review")
    c = j.act(cid, "request_changes", j.editor, comment="Add the archive link.")
    assert c["state"] == "in_progress" and c["assignee_id"] == j.checker.id
    comments = j.client.get(f"/api/v1/claims/{cid}/comments", headers=j.viewer.headers).json()["items"]
    assert comments[-1]["body"] == "Add the archive link."


def test_quorum_of_two(settings, database, desk, tmp_path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(settings.model_copy(update={"review_quorum": 2}), database)
    app.state.owns_database = False
    app.state.start_worker = False
    with TestClient(app) as client:
        j = Journey(client, desk)
        third = desk.person("editor")
        cid = j.to_state("in_review")
        c = j.act(cid, "approve", j.editor)
        assert c["state"] == "in_review" and [a["editor_id"] for a in c["approvals"]] == [j.editor.id]
        r = client.post(f"/api/v1/claims/{cid}/actions/approve", headers=j.editor.headers)
        assert r.status_code == 409, "the same editor cannot approve twice"
        # request_changes clears the round's approvals
        j.act(cid, "request_changes", j.editor2, comment="One more source.")
        j.act(cid, "submit", j.checker)
        assert j.get(cid)["approvals"] == []
        j.act(cid, "approve", j.editor)
        c = j.act(cid, "approve", third)
        assert c["state"] == "published"
        assert sorted(c["published_verdict"]["approved_by"]) == sorted([j.editor.id, third.id])


def test_timeline_records_every_step_with_actor(j: Journey) -> None:
    cid = j.to_state("published")
    events = j.client.get(f"/api/v1/claims/{cid}/events?limit=500", headers=j.viewer.headers).json()["items"]
    types = [e["type"] for e in events]
    assert types[0] == "claim.created"
    changes = [(e["data"]["from"], e["data"]["to"]) for e in events if e["type"] == "claim.state_changed"]
    assert changes == [
        ("submitted", "queued"),
        ("queued", "in_progress"),
        ("in_progress", "in_review"),
        ("in_review", "published"),
    ]
    for t in ("claim.assigned", "claim.verdict_set", "evidence.added", "claim.approval_added", "claim.published"):
        assert t in types
    assert all(e["actor_id"] and e["api_key_id"] for e in events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # paging: Link header and cursor walk the same events
    r = j.client.get(f"/api/v1/claims/{cid}/events?limit=3", headers=j.viewer.headers)
    assert 'rel="next"' in r.headers["link"]
    seen = r.json()["items"]
    while r.json()["next_cursor"]:
        r = j.client.get(
            f"/api/v1/claims/{cid}/events",
            params={"limit": 3, "cursor": r.json()["next_cursor"]},
            headers=j.viewer.headers,
        )
        seen += r.json()["items"]
    assert [e["id"] for e in seen] == [e["id"] for e in events]


def test_outbox_row_for_every_event(j: Journey, database) -> None:
    import sqlalchemy as sa

    cid = j.to_state("in_review")
    with database.read_session() as s:
        events = s.execute(
            sa.text("SELECT id, type FROM audit_events WHERE claim_id = :c ORDER BY id"), {"c": cid}
        ).all()
        outbox = s.execute(
            sa.text("SELECT event_id, type, payload FROM outbox WHERE claim_id = :c ORDER BY id"), {"c": cid}
        ).all()
    assert [(e.id, e.type) for e in events] == [(o.event_id, o.type) for o in outbox]
    last = outbox[-1].payload
    if isinstance(last, str):
        import json

        last = json.loads(last)
    assert last["claim"]["id"] == cid and last["claim"]["state"] == "in_review"


def test_make_settings_helper_is_usable(tmp_path) -> None:
    s = make_settings("sqlite://", tmp_path, review_quorum=3)
    assert s.review_quorum == 3 and s.rate_limit_writes == "0"
