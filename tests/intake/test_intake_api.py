"""Intake over HTTP: post an article, read its candidates, accept one as a claim; who may do what;
bad input changes nothing. Also the structured `figure` that claims gain."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import Journey

ARTICLE = """Floods kill dozens in Lower Vale

At least 40 people were killed when the Tarn burst its banks in the Lower Vale district, the regional governor said on Tuesday.
The relief agency Aidline said more than 100 people had died and that up to 9,000 homes were flooded. Its figures could not be independently verified.
Residents crowded into the school hall overnight.
A residents' committee counted 61 dead and 140 missing in the valley.
The Tarn dam, which was built in 1987, held, according to its operator."""  # noqa: E501

BODY = {
    "text": ARTICLE,
    "url": "https://valley-courier.example/floods",
    "outlet": "The Valley Courier",
    "published_at": "2026-03-04T10:00:00Z",
}
ARTICLES = "/api/v1/intake/articles"


@pytest.fixture
def j(client, desk) -> Journey:
    return Journey(client, desk)


def _count(database, table: str) -> int:
    with database.read_session() as s:
        return int(s.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _post(j: Journey, who=None, expect: int = 201, **body: Any) -> dict[str, Any]:
    r = j.client.post(ARTICLES, json={**BODY, **body}, headers=(who or j.contributor).headers)
    assert r.status_code == expect, r.text
    return dict(r.json())


def _candidate(article: dict[str, Any], starts_with: str) -> dict[str, Any]:
    return next(c for c in article["candidates"] if c["text"].startswith(starts_with))


def _accept(j: Journey, article_id: int, index: int, who, expect: int = 201, body: Any = None) -> dict[str, Any]:
    r = j.client.post(f"{ARTICLES}/{article_id}/candidates/{index}/accept", json=body, headers=who.headers)
    assert r.status_code == expect, r.text
    return dict(r.json())


def test_article_is_stored_with_candidates_that_point_into_its_text(j: Journey, database) -> None:
    r = j.client.post(ARTICLES, json=BODY, headers=j.contributor.headers)
    assert r.status_code == 201, r.text
    article = r.json()
    assert r.headers["location"] == f"{ARTICLES}/{article['id']}"
    assert article["text"] == ARTICLE
    assert (article["url"], article["outlet"], article["language"], article["note"]) == (
        BODY["url"],
        BODY["outlet"],
        "en",
        None,
    )
    assert article["published_at"] == "2026-03-04T10:00:00Z"
    assert article["submitted_by"] == j.contributor.id
    candidates = article["candidates"]
    assert [c["index"] for c in candidates] == list(range(len(candidates)))
    assert len(candidates) >= 5
    for c in candidates:
        assert ARTICLE[c["start"] : c["end"]] == c["text"]
        assert set(c) >= {"index", "text", "start", "end", "claimant", "figures", "dates", "hedges", "score"}
        assert 0 <= c["score"] <= 1 and c["reasons"]
        for f in c["figures"]:
            assert set(f) >= {"low", "high", "qualifier", "counted", "unit"}
            assert ARTICLE[f["start"] : f["end"]] == f["text"]
    assert not any(c["text"].startswith("Residents crowded") for c in candidates)  # nothing to check

    governor = _candidate(article, "At least 40 people")
    assert governor["claimant"] == "the regional governor"
    assert governor["figures"][0] | {"text": None, "start": None, "end": None} == {
        "low": 40.0,
        "high": None,
        "qualifier": "at least",
        "counted": "people killed",
        "unit": "people",
        "text": None,
        "start": None,
        "end": None,
    }
    assert governor["dates"] == ["2026-03-03"]  # "on Tuesday", from the publication date
    assert _candidate(article, "Its figures")["hedges"] == ["could not be independently verified"]
    assert _candidate(article, "The Tarn dam")["dates"] == ["in 1987"]

    again = j.client.get(f"{ARTICLES}/{article['id']}", headers=j.contributor.headers)
    assert again.status_code == 200 and again.json() == article

    with database.read_session() as s:
        events = s.execute(
            sa.text("SELECT type, claim_id, data FROM audit_events WHERE subject = :s"),
            {"s": f"article:{article['id']}"},
        ).all()
    assert [(e[0], e[1]) for e in events] == [("article.created", None)]
    assert _count(database, "outbox") == 0  # audited, not announced
    assert _count(database, "article_candidates") == len(candidates)


def test_accepting_a_candidate_makes_a_claim_linked_to_its_span(j: Journey, database) -> None:
    article = _post(j)
    cand = _candidate(article, "At least 40 people")
    claim = _accept(j, article["id"], cand["index"], j.contributor)
    assert claim["text"] == cand["text"]
    assert claim["claimant"] == "the regional governor"
    assert claim["appearance_url"] == BODY["url"]
    assert claim["outlet"] == BODY["outlet"]
    assert claim["appeared_at"] == "2026-03-04T10:00:00Z"
    assert claim["language"] == "en"
    assert claim["state"] == "submitted" and claim["created_by"] == j.contributor.id
    assert claim["figure"] == {
        "low": 40.0,
        "high": None,
        "qualifier": "at least",
        "counted": "people killed",
        "unit": "people",
        "as_of": "2026-03-04",
    }
    assert claim["source"] == {"article_id": article["id"], "start": cand["start"], "end": cand["end"]}
    # The sentence with its neighbours.
    assert claim["context"] == "\n".join(
        ["Floods kill dozens in Lower Vale", cand["text"], _candidate(article, "The relief agency")["text"]]
    )

    read = j.get(claim["id"])
    assert (read["figure"], read["source"]) == (claim["figure"], claim["source"])
    listed = j.client.get(f"{ARTICLES}/{article['id']}", headers=j.contributor.headers).json()
    assert _candidate(listed, "At least 40 people")["accepted_claim_id"] == claim["id"]
    events = j.client.get(f"/api/v1/claims/{claim['id']}/events", headers=j.viewer.headers).json()["items"]
    assert events[0]["type"] == "claim.created" and events[0]["data"]["source"] == claim["source"]

    # A candidate without a figure gives a claim without one.
    hedge = _accept(j, article["id"], _candidate(article, "Its figures")["index"], j.editor)
    assert hedge["figure"] is None and hedge["claimant"] == "The relief agency Aidline"


def test_accepting_twice_is_a_conflict_and_unknown_ones_are_not_found(j: Journey, database) -> None:
    article = _post(j)
    first = _accept(j, article["id"], 1, j.contributor)
    claims = _count(database, "claims")
    again = j.client.post(f"{ARTICLES}/{article['id']}/candidates/1/accept", headers=j.editor.headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["claim_id"] == first["id"]
    for path in (
        f"{ARTICLES}/{article['id']}/candidates/99/accept",
        f"{ARTICLES}/{article['id']}/candidates/-1/accept",
        f"{ARTICLES}/{article['id']}/candidates/one/accept",
        f"{ARTICLES}/999999/candidates/0/accept",
        f"{ARTICLES}/abc/candidates/0/accept",
    ):
        r = j.client.post(path, headers=j.editor.headers)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/problem+json")
    assert _count(database, "claims") == claims


def test_accept_body_adjusts_the_claim(j: Journey, database) -> None:
    article = _post(j)
    index = _candidate(article, "A residents' committee")["index"]
    bad = j.client.post(
        f"{ARTICLES}/{article['id']}/candidates/{index}/accept", json={"colour": "red"}, headers=j.editor.headers
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "colour"
    too_long = j.client.post(
        f"{ARTICLES}/{article['id']}/candidates/{index}/accept", json={"text": "x" * 1001}, headers=j.editor.headers
    )
    assert too_long.status_code == 422
    claim = _accept(
        j,
        article["id"],
        index,
        j.editor,
        body={
            "text": "61 people died and 140 are missing in the Lower Vale floods",
            "claimant": "Lower Vale residents' committee",
            "priority": "urgent",
            "tags": ["Flood", "casualties"],
        },
    )
    assert claim["text"] == "61 people died and 140 are missing in the Lower Vale floods"
    assert claim["claimant"] == "Lower Vale residents' committee"
    assert (claim["priority"], claim["tags"]) == ("urgent", ["flood", "casualties"])
    assert claim["figure"]["low"] == 61.0 and claim["figure"]["counted"] == "dead"
    assert claim["created_by"] == j.editor.id


def test_who_may_read_and_accept(j: Journey, desk, database) -> None:
    article = _post(j)
    other = desk.person("contributor")
    own_article_checker = desk.person("checker")
    path = f"{ARTICLES}/{article['id']}"
    assert j.client.post(ARTICLES, json=BODY, headers=j.viewer.headers).status_code == 403
    assert j.client.get(path, headers=j.viewer.headers).status_code == 403
    assert j.client.get(path).status_code == 401
    # Not theirs: as if it did not exist.
    for who in (other, j.checker):
        assert j.client.get(path, headers=who.headers).status_code == 404
        assert j.client.post(f"{path}/candidates/0/accept", headers=who.headers).status_code == 404
    assert j.client.post(f"{path}/candidates/0/accept", headers=j.viewer.headers).status_code == 403
    assert j.client.get(path, headers=j.editor.headers).status_code == 200
    _accept(j, article["id"], 0, j.contributor)
    _accept(j, article["id"], 1, j.editor)
    # Anyone who submitted the article may accept from it.
    mine = _post(j, who=own_article_checker)
    _accept(j, mine["id"], 0, own_article_checker)

    listed = j.client.get(ARTICLES, headers=other.headers).json()
    assert listed == {"items": [], "next_cursor": None}
    everything = j.client.get(ARTICLES, headers=j.editor.headers).json()["items"]
    assert [a["id"] for a in everything] == [mine["id"], article["id"]]
    assert everything[1]["accepted_count"] == 2 and everything[1]["candidate_count"] == len(article["candidates"])


def test_articles_list_pages(j: Journey) -> None:
    ids = [_post(j, text=f"Officials said {n} people were evacuated from the valley.")["id"] for n in (12, 30, 45)]
    r = j.client.get(ARTICLES, params={"limit": 2}, headers=j.contributor.headers)
    page = r.json()
    assert [a["id"] for a in page["items"]] == ids[:0:-1] and page["next_cursor"]
    assert 'rel="next"' in r.headers["link"]
    rest = j.client.get(ARTICLES, params={"limit": 2, "cursor": page["next_cursor"]}, headers=j.contributor.headers)
    assert [a["id"] for a in rest.json()["items"]] == [ids[0]] and rest.json()["next_cursor"] is None
    bad = j.client.get(ARTICLES, params={"cursor": "nope"}, headers=j.contributor.headers)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")


BAD_ARTICLES: list[tuple[dict[str, Any], int, str | None]] = [
    ({"text": None}, 422, "text"),
    ({"text": ""}, 422, "text"),
    ({"text": " \n\t "}, 422, "text"),
    ({"text": 42}, 422, "text"),
    ({"colour": "red"}, 422, "colour"),
    ({"url": "ftp://example.org/a"}, 422, "url"),
    ({"published_at": "2026-03-04T10:00:00"}, 422, "published_at"),  # no zone: ambiguous
    ({"published_at": "last week"}, 422, "published_at"),
    ({"language": "english!"}, 422, "language"),
    ({"outlet": "Valley\x00Courier"}, 422, "outlet"),
    ({"text": "Forty people died.\x00"}, 422, "text"),
    ({"text": "\x01\x02\x03\x04 binary \x05\x06\x07\x08\x0e\x0f\x10\x11\x12"}, 422, "text"),
    ({"text": "Forty people died \ud800 in the district."}, 422, "text"),
    ({"text": "Forty people died in the district. " * 5715}, 413, None),
]


def test_bad_articles_are_refused_and_store_nothing(client, desk, database) -> None:
    contributor = desk.person("contributor")
    tables = ("articles", "article_candidates", "audit_events", "outbox", "claims")
    before = [_count(database, t) for t in tables]
    for body, status, field in BAD_ARTICLES:
        payload = {**BODY, **body}
        if payload.get("text") is None:
            payload.pop("text")
        # Encoded here: "\ud800" must travel as a JSON escape (it has no UTF-8 form).
        headers = {**contributor.headers, "content-type": "application/json"}
        r = client.post(ARTICLES, content=json.dumps(payload).encode(), headers=headers)
        assert r.status_code == status, (body if len(str(body)) < 200 else "long text", r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == status and problem["title"] and problem["detail"]
        if field:
            assert any(field in [str(p) for p in e["loc"]] for e in problem["errors"]), problem
        if "\x01" in str(body.get("text")):
            assert "not text" in problem["detail"]
    assert [_count(database, t) for t in tables] == before


def test_unsupported_language_gets_a_note_and_no_candidates(j: Journey) -> None:
    korean = "홍수로 40명이 사망했다고 도지사가 밝혔다. 구호 단체는 사망자가 100명이 넘는다고 말했다."
    article = _post(j, text=korean, url=None, outlet=None, published_at=None)
    assert article["candidates"] == [] and article["language"] == "ko"
    assert "not supported" in article["note"]
    stated = _post(j, language="fr")
    assert stated["candidates"] == [] and stated["language"] == "fr" and "'fr'" in stated["note"]
    none_found = _post(j, text="Residents crowded into the school hall overnight.")
    assert none_found["candidates"] == [] and "no check-worthy" in none_found["note"]


def test_concurrent_accepts_make_one_claim(live_url, desk, database) -> None:
    editors = [desk.person("editor") for _ in range(6)]
    with httpx.Client(base_url=live_url, timeout=30) as c:
        article = c.post(ARTICLES, json=BODY, headers=editors[0].headers).json()
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(editors))

    def accept(who) -> None:
        with httpx.Client(base_url=live_url, timeout=30, headers=who.headers) as c:
            start.wait()
            r = c.post(f"{ARTICLES}/{article['id']}/candidates/2/accept")
            with lock:
                statuses.append(r.status_code)

    threads = [threading.Thread(target=accept, args=(who,)) for who in editors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [201] + [409] * (len(editors) - 1)
    assert _count(database, "claims") == 1


# --- the figure on claims ---------------------------------------------------------------------


def test_claims_take_a_structured_figure(j: Journey) -> None:
    figure = {"low": 30, "high": 40, "qualifier": "between", "counted": "people killed", "unit": "people"}
    claim = j.create(text="Between 30 and 40 people were killed", figure={**figure, "as_of": "2026-03-04"})
    assert claim["figure"] == {**figure, "low": 30.0, "high": 40.0, "as_of": "2026-03-04"}
    assert j.create(text="No figure here")["figure"] is None
    r = j.client.patch(
        f"/api/v1/claims/{claim['id']}", json={"figure": {"low": 61, "counted": "dead"}}, headers=j.editor.headers
    )
    assert r.status_code == 200
    assert r.json()["figure"] == {
        "low": 61.0,
        "high": None,
        "qualifier": None,
        "counted": "dead",
        "unit": None,
        "as_of": None,
    }
    cleared = j.client.patch(f"/api/v1/claims/{claim['id']}", json={"figure": None}, headers=j.editor.headers)
    assert cleared.status_code == 200 and cleared.json()["figure"] is None
    events = j.client.get(f"/api/v1/claims/{claim['id']}/events", headers=j.viewer.headers).json()["items"]
    assert [e["data"]["changes"]["figure"][1] for e in events if e["type"] == "claim.updated"] == [
        {"low": 61.0, "high": None, "qualifier": None, "counted": "dead", "unit": None, "as_of": None},
        None,
    ]


BAD_FIGURES: list[dict[str, Any]] = [
    {"low": 50, "high": 40},
    {"low": 1, "qualifier": "roughly"},
    {"qualifier": "about"},
    {"low": 1, "colour": "red"},
    {"low": "many"},
    {"low": 1, "as_of": "yesterday"},
    {"low": 1, "counted": "x" * 201},
]


def test_bad_figures_are_refused(j: Journey, database) -> None:
    claim = j.create(text="Another claim")
    before = _count(database, "claims"), _count(database, "audit_events")
    for figure in BAD_FIGURES:
        r = j.client.post("/api/v1/claims", json={"text": "A claim", "figure": figure}, headers=j.contributor.headers)
        assert r.status_code == 422, (figure, r.text)
        assert any("figure" in [str(p) for p in e["loc"]] for e in r.json()["errors"])
        r = j.client.patch(f"/api/v1/claims/{claim['id']}", json={"figure": figure}, headers=j.editor.headers)
        assert r.status_code == 422, (figure, r.text)
    assert (_count(database, "claims"), _count(database, "audit_events")) == before
