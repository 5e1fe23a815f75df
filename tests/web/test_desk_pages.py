"""The desk's pages in process: the queue, next claim, the workspace and its forms, review.

Every change is made through a desk form and checked through the API, so the two agree."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.clock import clock
from app.db import Database
from app.main import create_app
from tests.conftest import make_settings
from tests.web.conftest import DeskPerson, api_claim, png_bytes, sign_in

VERDICT = {"rating": "false", "summary": "The gauge shows 1.2 metres, not four.", "confidence": "high"}


def _claim(client: TestClient, who: DeskPerson, claim_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/claims/{claim_id}", headers=who.headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _alert(page: str) -> str:
    found = re.search(r'<div class="problem" role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert found, "no problem shown on the page"
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip())


def test_queue_page_shows_priority_deadline_and_overdue(client: TestClient, people: dict[str, DeskPerson]) -> None:
    late = api_claim(client, people, priority="urgent", due_at=(clock.now() + timedelta(hours=1)).isoformat())
    calm = api_claim(client, people, text="The old bridge is 200 years old", priority="low")
    clock.advance(7200)  # the first one's deadline has passed
    csrf = sign_in(client, people["checker"])
    page = client.get("/desk/").text
    assert csrf
    assert page.index(f"#{late}") < page.index(f"#{calm}")  # queue order: urgent first
    assert '<span class="badge prio-urgent">Urgent</span>' in page
    assert '<span class="badge prio-low">Low</span>' in page
    assert "Overdue</span>" in page
    assert "is-overdue" in page
    assert 'data-shortcut="n"' in page


def test_search_finds_claims(client: TestClient, people: dict[str, DeskPerson]) -> None:
    found = api_claim(client, people, text="Turnout in Velna reached 71 percent")
    other = api_claim(client, people, text="The dam was finished in 1979")
    sign_in(client, people["viewer"])
    html = client.get("/desk/", params={"q": "turnout"}).text
    results = html.split('id="found-h"')[1].split("</section>")[0]
    assert f"#{found}" in results
    assert f"#{other}" not in results


def test_next_claim_hands_over_the_most_urgent_and_then_says_the_queue_is_empty(
    client: TestClient, people: dict[str, DeskPerson]
) -> None:
    api_claim(client, people, priority="low")
    urgent = api_claim(client, people, priority="urgent")
    checker = people["checker"]
    csrf = sign_in(client, checker)
    response = client.post("/desk/queue/next", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/desk/claims/{urgent}?ok=taken"
    claim = _claim(client, checker, urgent)
    assert claim["state"] == "in_progress"
    assert claim["assignee_id"] == checker.id
    page = client.get(response.headers["location"]).text
    assert "This claim is yours now" in page
    client.post("/desk/queue/next", data={"csrf": csrf})  # the low one
    response = client.post("/desk/queue/next", data={"csrf": csrf}, follow_redirects=False)
    assert response.headers["location"] == "/desk/?ok=queue_empty"
    assert "Nothing is queued right now." in client.get(response.headers["location"]).text


def test_viewers_cannot_take_the_next_claim(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people)
    csrf = sign_in(client, people["viewer"])
    assert 'action="/desk/queue/next"' not in client.get("/desk/").text
    response = client.post("/desk/queue/next", data={"csrf": csrf})
    assert response.status_code == 403
    assert "checker role or above" in _alert(response.text)
    assert _claim(client, people["viewer"], claim_id)["state"] == "queued"


def test_workspace_buttons_follow_the_transition_table(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress", context="Said at the 9 pm briefing.")
    for who, present, absent in (
        ("checker", ["actions/submit", "actions/release", 'id="verdict-form"', "evidence/file"], ["actions/approve"]),
        ("editor", ["actions/release", 'id="verdict-form"'], ["actions/submit", "actions/approve"]),
        ("viewer", [], ["actions/", 'id="verdict-form"', "evidence/file", "queue/next"]),
    ):
        client.cookies.clear()
        sign_in(client, people[who])
        html = client.get(f"/desk/claims/{claim_id}").text
        allowed = _claim(client, people[who], claim_id)["allowed_actions"]
        shown = sorted(set(re.findall(rf"/desk/claims/{claim_id}/actions/(\w+)", html)))
        assert shown == sorted(allowed), who
        for text in present:
            assert text in html, (who, text)
        for text in absent:
            assert text not in html, (who, text)
        assert "Said at the 9 pm briefing." in html
        assert "a city spokesperson" in html


def test_a_refused_submit_shows_what_is_missing(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress")
    csrf = sign_in(client, people["checker"])
    response = client.post(f"/desk/claims/{claim_id}/actions/submit", data={"csrf": csrf})
    assert response.status_code == 409
    assert _alert(response.text).startswith("Conflict (409) Cannot submit yet: verdict and evidence missing.")
    assert _claim(client, people["checker"], claim_id)["state"] == "in_progress"


def test_a_refused_verdict_keeps_what_was_typed(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress")
    csrf = sign_in(client, people["checker"])
    summary = "Half of it <b>holds</b>: the gauge read 1.2 m."
    response = client.post(
        f"/desk/claims/{claim_id}/verdict",
        data={"csrf": csrf, "rating": "", "summary": summary, "confidence": "low", "finding_date": "confirmed"},
    )
    assert response.status_code == 422
    assert "rating" in _alert(response.text)
    assert "Half of it &lt;b&gt;holds&lt;/b&gt;: the gauge read 1.2 m.</textarea>" in response.text
    assert '<option value="low" selected>' in response.text
    assert '<option value="confirmed" selected>' in response.text
    assert 'id="rating" name="rating" required aria-invalid="true"' in response.text
    # A rating the scale does not know is the service's refusal, shown the same way.
    response = client.post(
        f"/desk/claims/{claim_id}/verdict", data={"csrf": csrf, "rating": "sort_of", "summary": summary}
    )
    assert response.status_code == 422
    assert "Unknown rating 'sort_of'." in _alert(response.text)
    assert _claim(client, people["checker"], claim_id)["verdict"] is None


def test_a_stale_page_is_refused_instead_of_overwriting(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress")
    checker = people["checker"]
    csrf = sign_in(client, checker)
    version = _claim(client, checker, claim_id)["version"]
    r = client.put(f"/api/v1/claims/{claim_id}/verdict", json=VERDICT, headers=checker.headers)
    assert r.status_code == 200
    response = client.post(
        f"/desk/claims/{claim_id}/verdict",
        data={"csrf": csrf, "version": str(version), "rating": "true", "summary": "Looks right."},
    )
    assert response.status_code == 412
    assert "changed since you read it" in _alert(response.text)
    assert _claim(client, checker, claim_id)["verdict"]["rating"] == "false"


def test_the_whole_round_through_desk_forms(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, public=True)
    checker, author_editor, other_editor = people["checker"], people["editor"], people["editor2"]
    csrf = sign_in(client, checker)
    assert client.post("/desk/queue/next", data={"csrf": csrf}).status_code == 200
    r = client.post(
        f"/desk/claims/{claim_id}/evidence/link",
        data={"csrf": csrf, "url": "https://gauges.example/velna/7", "note": "The gauge log", "stance": "refutes"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"/desk/claims/{claim_id}/evidence/note",
        data={"csrf": csrf, "note": "Called the water board at 10:05.", "visibility": "public"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    data = {"csrf": csrf, **VERDICT, "finding_figure": "false"}
    r = client.post(f"/desk/claims/{claim_id}/verdict", data=data, follow_redirects=False)
    assert r.status_code == 303
    r = client.post(f"/desk/claims/{claim_id}/comments", data={"csrf": csrf, "body": "Ready when you are."})
    assert r.status_code == 200
    assert "Ready when you are." in r.text
    r = client.post(f"/desk/claims/{claim_id}/actions/submit", data={"csrf": csrf}, follow_redirects=False)
    assert r.headers["location"] == f"/desk/claims/{claim_id}?ok=submit"
    claim = _claim(client, checker, claim_id)
    assert claim["state"] == "in_review"
    assert claim["verdict"]["findings"] == {"figure": "false"}
    evidence = client.get(f"/api/v1/claims/{claim_id}/evidence", headers=checker.headers).json()["items"]
    assert [(e["kind"], e["stance"], e["visibility"]) for e in evidence] == [
        ("link", "refutes", "internal"),
        ("note", "context", "public"),
    ]

    # The first editor sends it back with a comment; an empty comment is refused in place.
    client.cookies.clear()
    csrf = sign_in(client, author_editor)
    html = client.get("/desk/review").text
    assert f'href="/desk/claims/{claim_id}#review-actions"' in html
    r = client.post(f"/desk/claims/{claim_id}/actions/request_changes", data={"csrf": csrf, "comment": "  "})
    assert r.status_code == 422
    assert "request_changes needs a comment." in _alert(r.text)
    r = client.post(
        f"/desk/claims/{claim_id}/actions/request_changes",
        data={"csrf": csrf, "comment": "Add the gauge's own page."},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert _claim(client, author_editor, claim_id)["state"] == "in_progress"

    # The checker fixes it and submits again; this editor edits the verdict, so may not approve.
    client.cookies.clear()
    csrf = sign_in(client, checker)
    assert "Add the gauge&#39;s own page." in client.get(f"/desk/claims/{claim_id}").text
    client.post(f"/desk/claims/{claim_id}/actions/submit", data={"csrf": csrf})
    client.cookies.clear()
    csrf = sign_in(client, author_editor)
    client.post(f"/desk/claims/{claim_id}/actions/request_changes", data={"csrf": csrf, "comment": "One word."})
    r = client.post(f"/desk/claims/{claim_id}/verdict", data={"csrf": csrf, **VERDICT, "summary": "Edited."})
    assert r.status_code == 200
    client.cookies.clear()
    csrf = sign_in(client, checker)
    client.post(f"/desk/claims/{claim_id}/actions/submit", data={"csrf": csrf})
    client.cookies.clear()
    csrf = sign_in(client, author_editor)
    html = client.get("/desk/review").text
    others = html.split('id="others-h"')[1]
    assert f"#{claim_id}" in others
    assert f"/desk/claims/{claim_id}/actions/approve" not in client.get(f"/desk/claims/{claim_id}").text
    r = client.post(f"/desk/claims/{claim_id}/actions/approve", data={"csrf": csrf})
    assert r.status_code == 403
    assert "Four eyes" in _alert(r.text)

    # Another editor approves from the review page's flow; the public page shows the verdict.
    client.cookies.clear()
    csrf = sign_in(client, other_editor)
    page = client.get(f"/desk/claims/{claim_id}").text
    assert 'data-shortcut="a"' in page
    r = client.post(
        f"/desk/claims/{claim_id}/actions/approve", data={"csrf": csrf, "back": "review"}, follow_redirects=False
    )
    assert r.headers["location"] == "/desk/review?ok=approve"
    assert _claim(client, other_editor, claim_id)["state"] == "published"
    public = client.get(f"/public/fact-checks/{claim_id}")
    assert public.status_code == 200
    assert "Edited." in public.text
    timeline = client.get(f"/desk/claims/{claim_id}").text.split('id="timeline-h"')[1]
    assert "requested changes" in timeline
    assert "approved it (in review → published)" in timeline


def test_link_refusal_keeps_the_typed_link(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress")
    csrf = sign_in(client, people["checker"])
    r = client.post(
        f"/desk/claims/{claim_id}/evidence/link",
        data={"csrf": csrf, "url": "ftp://files.example/x", "note": "the log"},
    )
    assert r.status_code == 422
    assert "url" in _alert(r.text)
    assert 'value="ftp://files.example/x" aria-invalid="true"' in r.text
    assert '<details class="more" open>' in r.text


def test_upload_streams_a_file_past_the_json_limit(
    db_url: str, tmp_path: Path, database: Database, people: dict[str, DeskPerson]
) -> None:
    app = create_app(make_settings(db_url, tmp_path, max_json_bytes=1024), database)
    app.state.owns_database = False
    with TestClient(app) as client:
        _upload_past_the_json_limit(client, people)


def _upload_past_the_json_limit(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress")
    checker = people["checker"]
    csrf = sign_in(client, checker)
    picture = png_bytes(200, 120)
    assert len(picture) > 1024
    r = client.post(
        f"/desk/claims/{claim_id}/evidence/file",
        files={"file": ("gauge.png", picture, "image/png")},
        data={"note": "The gauge at 06:00", "stance": "refutes", "dimension": "figure"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"redirect": f"/desk/claims/{claim_id}?ok=evidence#evidence"}
    items = client.get(f"/api/v1/claims/{claim_id}/evidence", headers=checker.headers).json()["items"]
    assert [(e["kind"], e["media_type"], e["filename"], e["size"], e["stance"]) for e in items] == [
        ("file", "image/png", "gauge.png", len(picture), "refutes")
    ]
    page = client.get(f"/desk/claims/{claim_id}").text
    assert f'src="/desk/evidence/{items[0]["id"]}/file"' in page
    shown = client.get(f"/desk/evidence/{items[0]['id']}/file")
    assert shown.content == picture
    assert shown.headers["content-disposition"].startswith("inline")
    # Other form posts still get the small limit.
    r = client.post(f"/desk/claims/{claim_id}/comments", data={"csrf": csrf, "body": "x" * 2000})
    assert r.status_code == 413


def test_upload_refusals(app: Any, client: TestClient, people: dict[str, DeskPerson]) -> None:
    app.state.settings = app.state.settings.model_copy(update={"max_upload_bytes": 4096})
    claim_id = api_claim(client, people, state="in_progress")
    checker = people["checker"]
    csrf = sign_in(client, checker)
    files = {"file": ("gauge.png", png_bytes(), "image/png")}
    headers = {"Accept": "application/json"}
    r = client.post(f"/desk/claims/{claim_id}/evidence/file", files=files, headers=headers)
    assert r.status_code == 403
    assert "security token" in r.json()["detail"]
    big = {"file": ("big.png", png_bytes(400, 300), "image/png")}
    r = client.post(f"/desk/claims/{claim_id}/evidence/file", files=big, headers={**headers, "X-CSRF-Token": csrf})
    assert r.status_code == 413
    assert "4096-byte upload limit" in r.json()["detail"]
    text = {"file": ("tool.exe", b"MZ\x90\x00\x03" + bytes(200), "application/octet-stream")}
    r = client.post(f"/desk/claims/{claim_id}/evidence/file", files=text, headers={**headers, "X-CSRF-Token": csrf})
    assert r.status_code == 415
    # Without script: the token in the query, the refusal as a page with the note kept.
    r = client.post(f"/desk/claims/{claim_id}/evidence/file?csrf={csrf}", files=text, data={"note": "their page"})
    assert r.status_code == 415
    assert "is not an accepted evidence type" in _alert(r.text)
    assert client.get(f"/api/v1/claims/{claim_id}/evidence", headers=checker.headers).json()["items"] == []
    # A viewer is refused before a byte is read.
    client.cookies.clear()
    csrf = sign_in(client, people["viewer"])
    r = client.post(f"/desk/claims/{claim_id}/evidence/file", files=files, headers={**headers, "X-CSRF-Token": csrf})
    assert r.status_code == 403


def test_retract_evidence_from_the_page(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress")
    checker = people["checker"]
    r = client.post(
        f"/api/v1/claims/{claim_id}/evidence", json={"kind": "note", "note": "Wrong river."}, headers=checker.headers
    )
    evidence_id = r.json()["id"]
    csrf = sign_in(client, checker)
    r = client.post(f"/desk/evidence/{evidence_id}/retract", data={"csrf": csrf, "reason": "Mixed up the rivers."})
    assert r.status_code == 200
    assert "Evidence retracted." in r.text
    assert "retracted: Mixed up the rivers." in r.text
    r = client.post(f"/desk/evidence/{evidence_id}/retract", data={"csrf": csrf, "reason": "again"})
    assert r.status_code == 409
    assert "already retracted" in _alert(r.text)


def test_unknown_claims_and_evidence_are_404_pages(client: TestClient, people: dict[str, DeskPerson]) -> None:
    sign_in(client, people["viewer"])
    for path in ("/desk/claims/999999", "/desk/claims/abc", "/desk/evidence/12345/file", "/desk/nothing-here"):
        r = client.get(path)
        assert r.status_code == 404, path
    r = client.get("/desk/nothing-here")
    assert r.headers["content-type"].startswith("text/html")
    assert "There is no such page on the desk." in _alert(r.text)
    assert client.get("/desk/static/desk.css").status_code == 200
    r = client.get("/desk/claims/999999")
    assert r.headers["content-type"].startswith("text/html")
    assert "No claim with id 999999" in _alert(r.text) or "not found" in _alert(r.text).lower()


def test_editors_triage_a_claim(client: TestClient, people: dict[str, DeskPerson]) -> None:
    claim_id = api_claim(client, people, state="in_progress", tags=["flood"])
    checker, editor = people["checker"], people["editor"]
    csrf = sign_in(client, checker)
    assert 'id="triage-h"' not in client.get(f"/desk/claims/{claim_id}").text
    r = client.post(
        f"/desk/claims/{claim_id}/triage", data={"csrf": csrf, "priority": "normal", "tags": "flood", "public": "on"}
    )
    assert r.status_code == 403
    assert "Whether a check is public is an editor's decision." in _alert(r.text)
    client.cookies.clear()
    csrf = sign_in(client, editor)
    page = client.get(f"/desk/claims/{claim_id}").text
    assert 'id="triage-h"' in page
    too_long = "x" * 70
    r = client.post(
        f"/desk/claims/{claim_id}/triage",
        data={"csrf": csrf, "priority": "urgent", "tags": f"flood, {too_long}", "due_at": "2030-01-02T09:30"},
    )
    assert r.status_code == 422
    assert "tags" in _alert(r.text)
    assert f'value="flood, {too_long}" aria-invalid="true"' in r.text
    r = client.post(
        f"/desk/claims/{claim_id}/triage",
        data={
            "csrf": csrf,
            "priority": "urgent",
            "tags": "flood, Bridges",
            "due_at": "2030-01-02T09:30",
            "public": "on",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == f"/desk/claims/{claim_id}?ok=edited"
    claim = _claim(client, editor, claim_id)
    assert (claim["priority"], claim["tags"], claim["public"]) == ("urgent", ["flood", "bridges"], True)
    assert claim["due_at"].startswith("2030-01-02T09:30:00")
    same = {"csrf": csrf, "priority": "urgent", "tags": "flood bridges", "due_at": "2030-01-02T09:30", "public": "on"}
    r = client.post(f"/desk/claims/{claim_id}/triage", data=same, follow_redirects=False)
    assert r.headers["location"] == f"/desk/claims/{claim_id}?ok=unchanged"
    assert _claim(client, editor, claim_id)["version"] == claim["version"]


def test_related_claims_show_on_the_workspace(client: TestClient, people: dict[str, DeskPerson]) -> None:
    first = api_claim(client, people, text="Forty-two people died when the Velna river burst its banks on Monday")
    second = api_claim(client, people, text="42 people died when the Velna river burst its banks on Monday night")
    related = client.get(f"/api/v1/claims/{second}/related", headers=people["viewer"].headers).json()
    sign_in(client, people["viewer"])
    section = client.get(f"/desk/claims/{second}").text.split('id="related-h"')[1].split("</section>")[0]
    assert related["duplicates"], related  # the API finds it, and so the page must show it
    assert f'href="/desk/claims/{first}"' in section


def test_desk_writes_spend_the_same_write_budget(
    db_url: str, tmp_path: Path, database: Database, people: dict[str, DeskPerson]
) -> None:
    settings = make_settings(db_url, tmp_path, rate_limit_writes="3/minute")
    application = create_app(settings, database)
    application.state.owns_database = False
    application.state.start_worker = False
    checker = people["checker"]
    with TestClient(application) as api:  # through the checker's API key: a budget of its own
        claim_id = api_claim(api, people, state="in_progress")
    with TestClient(application, raise_server_exceptions=False) as browser:
        csrf = sign_in(browser, checker)
        answers = [
            browser.post(
                f"/desk/claims/{claim_id}/comments", data={"csrf": csrf, "body": f"note {n}"}, follow_redirects=False
            )
            for n in range(4)
        ]
        assert [a.status_code for a in answers[:3]] == [303, 303, 303]
        refused = answers[3]
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "Too many writes from this account" in unescape(refused.text)
        # The refused comment was not stored; reads still work.
        comments = browser.get(f"/api/v1/claims/{claim_id}/comments", headers=checker.headers).json()["items"]
        assert sorted(c["body"] for c in comments) == ["note 0", "note 1", "note 2"]
        assert browser.get("/desk/").status_code == 200
