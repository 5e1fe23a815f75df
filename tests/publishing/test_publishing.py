"""ClaimReview export, public pages and feed, the rating scale, corrections, and that nothing
internal reaches the public."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from app.publishing.claimreview import shorten
from tests.helpers import Journey

# From schema.org's ClaimReview and Google's fact-check structured-data documentation: what must
# be there and what should be.
REQUIRED = {"@context", "@type", "claimReviewed", "reviewRating", "url"}
RECOMMENDED = {"author", "datePublished", "itemReviewed"}
RATING_REQUIRED = {"@type", "alternateName"}
RATING_RECOMMENDED = {"ratingValue", "bestRating", "worstRating", "name"}
CLAIM_RECOMMENDED = {"@type", "author", "datePublished", "appearance"}


@pytest.fixture
def j(client, desk) -> Journey:
    return Journey(client, desk)


def _published(j: Journey, **claim) -> int:
    body = {
        "text": "The bridge over the Velna collapsed on Monday night, killing four",
        "claimant": "a council member",
        "appearance_url": "https://news.example/bridge",
        "appeared_at": "2026-11-20T08:00:00Z",
        "public": True,
        "language": "en",
        **claim,
    }
    cid = j.create(**body)["id"]
    j.act(cid, "queue", j.editor)
    j.act(cid, "start", j.checker)
    j.client.post(
        f"/api/v1/claims/{cid}/evidence",
        headers=j.checker.headers,
        json={
            "kind": "link",
            "url": "https://photos.example/bridge",
            "visibility": "public",
            "note": "Photo of the standing bridge on Tuesday",
            "stance": "refutes",
        },
    )
    j.client.post(
        f"/api/v1/claims/{cid}/evidence",
        headers=j.checker.headers,
        json={"kind": "note", "note": "SECRET-SOURCE phoned from the district office"},
    )
    j.client.post(f"/api/v1/claims/{cid}/comments", headers=j.checker.headers, json={"body": "INTERNAL-CHATTER"})
    r = j.client.put(
        f"/api/v1/claims/{cid}/verdict",
        headers=j.checker.headers,
        json={
            "rating": "false",
            "summary": "The bridge stands; no deaths were recorded.",
            "findings": {"event": "false"},
        },
    )
    assert r.status_code == 200
    j.act(cid, "submit", j.checker)
    j.act(cid, "approve", j.editor)
    return int(cid)


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.json_ld: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        self._in = tag == "script" and ("type", "application/ld+json") in attrs

    def handle_data(self, data):
        if self._in:
            self.json_ld.append(data)

    def handle_endtag(self, tag):
        self._in = False


def _check_claimreview(review: dict) -> None:
    assert set(review) >= REQUIRED and set(review) >= RECOMMENDED, set(review)
    assert review["@context"] == "https://schema.org" and review["@type"] == "ClaimReview"
    rating = review["reviewRating"]
    assert set(rating) >= RATING_REQUIRED and set(rating) >= RATING_RECOMMENDED
    assert rating["@type"] == "Rating" and 1 <= rating["ratingValue"] <= 5
    assert (rating["bestRating"], rating["worstRating"]) == (5, 1)
    assert set(review["itemReviewed"]) >= CLAIM_RECOMMENDED
    assert review["itemReviewed"]["@type"] == "Claim"
    assert review["itemReviewed"]["author"]["@type"] in ("Person", "Organization")
    assert review["author"]["@type"] == "Organization" and review["author"]["name"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", review["datePublished"])
    assert len(review["claimReviewed"]) <= 75
    assert "False" not in review["claimReviewed"]


def test_claimreview_export(j: Journey, settings) -> None:
    cid = _published(j)
    r = j.client.get(f"/api/v1/claims/{cid}/claimreview", headers=j.viewer.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    review = r.json()
    _check_claimreview(review)
    assert review["url"] == f"{settings.public_base_url}/public/fact-checks/{cid}"
    assert review["reviewRating"]["alternateName"] == "False" and review["reviewRating"]["ratingValue"] == 1
    assert review["itemReviewed"]["appearance"]["url"] == "https://news.example/bridge"
    assert review["itemReviewed"]["datePublished"] == "2026-11-20"
    assert review["creativeWorkStatus"] == "Published"
    never = j.create()["id"]
    assert j.client.get(f"/api/v1/claims/{never}/claimreview", headers=j.viewer.headers).status_code == 409
    assert j.client.get("/api/v1/claims/999/claimreview", headers=j.viewer.headers).status_code == 404
    assert j.client.get(f"/api/v1/claims/{cid}/claimreview").status_code == 401


def test_shorten_at_a_word_boundary() -> None:
    long = "The regional governor said that forty people had died in the district after the river burst its banks"
    short = shorten(long)
    assert len(short) <= 75 and short.endswith("…") and long.startswith(short[:-1])
    assert long[len(short) - 1] == " "  # cut where a word ended
    assert shorten("Short claim") == "Short claim"


def test_public_page_and_feed(j: Journey) -> None:
    cid = _published(j)
    page = j.client.get(f"/public/fact-checks/{cid}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "The bridge over the Velna collapsed" in html and "a council member" in html
    assert "The bridge stands; no deaths were recorded." in html and ">False<" in html
    assert "https://photos.example/bridge" in html
    for secret in ("SECRET-SOURCE", "INTERNAL-CHATTER"):
        assert secret not in html
    parser = _Scripts()
    parser.feed(html)
    assert len(parser.json_ld) == 1
    _check_claimreview(json.loads(parser.json_ld[0]))
    assert '<html lang="en">' in html and "<h1" in html
    feed = j.client.get("/public/fact-checks").json()
    assert [i["id"] for i in feed["items"]] == [cid]
    item = feed["items"][0]
    assert item["label"] == "False" and item["under_review"] is False
    assert "SECRET-SOURCE" not in json.dumps(feed)


def test_only_public_published_claims_are_shown(j: Journey) -> None:
    private = _published(j, public=False)
    assert j.client.get(f"/public/fact-checks/{private}").status_code == 404
    draft = j.to_state("in_review")
    assert j.client.get(f"/public/fact-checks/{draft}").status_code == 404
    shown = _published(j)
    assert [i["id"] for i in j.client.get("/public/fact-checks").json()["items"]] == [shown]
    # an editor takes a page down by clearing the flag (audited)
    r = j.client.patch(f"/api/v1/claims/{shown}", json={"public": False}, headers=j.editor.headers)
    assert r.status_code == 200
    assert j.client.get(f"/public/fact-checks/{shown}").status_code == 404
    assert j.client.get("/public/fact-checks").json()["items"] == []
    events = j.client.get(f"/api/v1/claims/{shown}/events?limit=200", headers=j.viewer.headers).json()["items"]
    assert any(e["type"] == "claim.updated" and e["data"]["changes"].get("public") == [True, False] for e in events)


def test_a_public_claim_never_published_stays_off_the_feed_however_its_row_holds_null(j: Journey, database) -> None:
    shown = _published(j)
    waiting = [j.create(public=True, text=f"Turnout was {n} % in the north")["id"] for n in (61, 62)]
    # Rows written before claims were inserted through Core hold the JSON text null in
    # published_verdict rather than SQL NULL; both kinds must read as never published.
    with database.write_engine.begin() as conn:
        conn.execute(sa.text("UPDATE claims SET published_verdict = NULL WHERE id = :id"), {"id": waiting[0]})
        cast = "CAST('null' AS JSON)" if database.dialect == "postgresql" else "'null'"
        conn.execute(sa.text(f"UPDATE claims SET published_verdict = {cast} WHERE id = :id"), {"id": waiting[1]})
    feed = j.client.get("/public/fact-checks", params={"limit": 1})
    assert feed.status_code == 200 and [i["id"] for i in feed.json()["items"]] == [shown]
    assert feed.json()["next_cursor"] is None
    for cid in waiting:
        assert j.client.get(f"/public/fact-checks/{cid}").status_code == 404


def test_feed_is_newest_first_and_paged(j: Journey) -> None:
    ids = [_published(j, text=f"Claim {i} about the flood") for i in range(4)]
    seen, cursor = [], None
    while True:
        page = j.client.get("/public/fact-checks", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert j.client.get("/public/fact-checks", params={"cursor": "zz"}).status_code == 400


def test_reopened_check_keeps_serving_with_a_correction(j: Journey) -> None:
    cid = _published(j)
    j.act(cid, "reopen", j.editor2, reason="a hospital list surfaced")
    review = j.client.get(f"/api/v1/claims/{cid}/claimreview", headers=j.viewer.headers).json()
    assert review["creativeWorkStatus"] == "UnderReview" and review["reviewRating"]["alternateName"] == "False"
    page = j.client.get(f"/public/fact-checks/{cid}").text
    assert "under review" in page
    j.client.put(
        f"/api/v1/claims/{cid}/verdict",
        headers=j.editor2.headers,
        json={"rating": "misleading", "summary": "One person died later in hospital."},
    )
    j.act(cid, "submit", j.editor2)
    j.act(cid, "approve", j.editor)
    review = j.client.get(f"/api/v1/claims/{cid}/claimreview", headers=j.viewer.headers).json()
    assert review["reviewRating"]["alternateName"] == "Misleading or missing context"
    assert review["correction"][0]["@type"] == "CorrectionComment"
    assert "a hospital list surfaced" in review["correction"][0]["text"]
    page = j.client.get(f"/public/fact-checks/{cid}").text
    assert "Corrections" in page and "a hospital list surfaced" in page and "under review" not in page


def test_rating_scale_json_and_html(client) -> None:
    scale = client.get("/public/rating-scale").json()
    assert [r["id"] for r in scale] == [
        "confirmed",
        "partly_confirmed",
        "unverified",
        "disputed",
        "misleading",
        "false",
    ]
    assert all(r["definition"] and 1 <= r["ratingValue"] <= 5 for r in scale)
    html = client.get("/public/rating-scale", headers={"Accept": "text/html"}).text
    assert "<table>" in html and "Misleading or missing context" in html


def test_custom_rating_scale(tmp_path, db_url, database) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import make_settings

    path = tmp_path / "scale.json"
    path.write_text(
        json.dumps(
            [
                {"id": "true", "label": "True", "definition": "Accurate.", "ratingValue": 5},
                {
                    "id": "needs_context",
                    "label": "Needs context",
                    "definition": "Missing context.",
                    "ratingValue": 3,
                    "recheckable": True,
                },
            ]
        )
    )
    app = create_app(make_settings(db_url, tmp_path, rating_scale=str(path)), database)
    app.state.owns_database = False
    app.state.start_worker = False
    with TestClient(app) as client:
        assert [r["id"] for r in client.get("/public/rating-scale").json()] == ["true", "needs_context"]
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "bad"}]')
    with pytest.raises(ValueError, match="label"):
        create_app(make_settings(db_url, tmp_path / "x", rating_scale=str(broken)), database)


def test_public_evidence_files_only(j: Journey) -> None:
    from tests.evidence import samples

    cid = j.create(text="Photo shows flooding at the station", public=True)["id"]
    j.act(cid, "queue", j.editor)
    j.act(cid, "start", j.checker)
    pub = j.client.post(
        f"/api/v1/claims/{cid}/evidence",
        headers=j.checker.headers,
        files={"file": ("station.png", samples.png(), "image/png")},
        data={"visibility": "public"},
    ).json()
    internal = j.client.post(
        f"/api/v1/claims/{cid}/evidence",
        headers=j.checker.headers,
        files={"file": ("source.pdf", samples.pdf(), "application/pdf")},
    ).json()
    j.verdict(cid, j.checker, rating="confirmed")
    assert j.client.get(f"/public/evidence/{pub['id']}/content").status_code == 404  # not published yet
    j.act(cid, "submit", j.checker)
    j.act(cid, "approve", j.editor)
    r = j.client.get(f"/public/evidence/{pub['id']}/content")
    assert r.status_code == 200 and r.content == samples.png()
    assert j.client.get(f"/public/evidence/{internal['id']}/content").status_code == 404
    html = j.client.get(f"/public/fact-checks/{cid}").text
    assert pub["sha256"] in html and internal["sha256"] not in html and "source.pdf" not in html


def test_a_reopened_check_shows_only_what_was_approved(j: Journey) -> None:
    cid = _published(j)
    j.act(cid, "reopen", j.editor2, reason="new footage")
    assert (
        j.client.patch(
            f"/api/v1/claims/{cid}", json={"text": "EDITED, NOT YET APPROVED"}, headers=j.editor2.headers
        ).status_code
        == 200
    )
    late = j.client.post(
        f"/api/v1/claims/{cid}/evidence",
        headers=j.editor2.headers,
        json={"kind": "link", "url": "https://late.example/unreviewed", "visibility": "public"},
    )
    assert late.status_code == 201
    page = j.client.get(f"/public/fact-checks/{cid}").text
    assert "EDITED, NOT YET APPROVED" not in page and "late.example" not in page
    assert "The bridge over the Velna collapsed" in page and "photos.example" in page
    review = j.client.get(f"/api/v1/claims/{cid}/claimreview", headers=j.viewer.headers).json()
    assert review["claimReviewed"].startswith("The bridge over the Velna")
    feed = j.client.get("/public/fact-checks").json()["items"][0]
    assert feed["text"].startswith("The bridge over the Velna") and feed["under_review"] is True


def test_a_recheck_that_ends_in_rejection_leaves_the_verdict_standing(j: Journey, database, settings) -> None:
    from datetime import timedelta

    from app.clock import clock
    from app.queue.timers import run_timers

    cid = j.create(text="Two bridges collapsed", public=True)["id"]
    j.act(cid, "queue", j.editor)
    j.act(cid, "start", j.checker)
    j.evidence(cid, j.checker)
    j.verdict(cid, j.checker, rating="unverified", recheck_at=(clock.now() + timedelta(days=1)).isoformat())
    j.act(cid, "submit", j.checker)
    j.act(cid, "approve", j.editor)
    clock.advance(2 * 86400)
    assert run_timers(database, settings).rechecks_due == 1
    assert j.client.get("/public/fact-checks").json()["items"][0]["under_review"] is True
    j.act(cid, "reject", j.editor, reason="No longer newsworthy")
    item = j.client.get("/public/fact-checks").json()["items"][0]
    assert item["under_review"] is False and item["label"].startswith("Unverified")
    review = j.client.get(f"/api/v1/claims/{cid}/claimreview", headers=j.viewer.headers).json()
    assert review["creativeWorkStatus"] == "Published"
