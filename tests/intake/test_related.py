"""Related claims: likely duplicates marked at creation and listed, figures for the same thing side by
side, and links made by hand."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import sqlalchemy as sa

from app.claims import service as claims_service
from app.claims.schemas import ClaimCreate
from app.intake import related
from app.intake.similarity import similarity
from tests.helpers import Journey
from tests.intake.quality import DATA_DIR

GOVERNOR = "At least 40 people were killed by flooding in the Lower Vale district, the governor said."
GOVERNOR_AGAIN = "At least forty people were killed by floods in Lower Vale district, said the governor."
AIDLINE = "The Lower Vale floods have left more than 100 people dead, according to Aidline."
RESIDENTS = "Residents of Lower Vale counted 61 dead and 140 missing after the flood."
HOMES = "Up to 9,000 homes were flooded in the Lower Vale district."
BANK = "The central bank held its main rate at 9.5 percent in March."


@pytest.fixture
def j(client, desk) -> Journey:
    return Journey(client, desk)


def _events(j: Journey, claim_id: int) -> list[dict[str, Any]]:
    r = j.client.get(f"/api/v1/claims/{claim_id}/events", headers=j.viewer.headers)
    assert r.status_code == 200
    return list(r.json()["items"])


def _audit_count(database) -> int:
    with database.read_session() as s:
        return int(s.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one())


def _related(j: Journey, claim_id: int) -> dict[str, Any]:
    r = j.client.get(f"/api/v1/claims/{claim_id}/related", headers=j.viewer.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- pure parts ------------------------------------------------------------------------------


def test_profile_scores_exactly_like_similarity() -> None:
    texts = []
    for path in sorted(DATA_DIR.glob("*.json"))[:4]:
        texts += [t for t in json.loads(path.read_text())["text"].split(". ") if t][:15]
    texts += ["", "...", "홍수로 40명이 사망했다", "洪水で40人が死亡した", "Губернатор заявил, что погибли 40 человек."]
    rng = random.Random(5)
    for _ in range(300):
        a, b = rng.choice(texts), rng.choice(texts)
        assert round(related.Profile(a).score(related.Profile(b)), 6) == round(similarity(a, b), 6), (a, b)


def test_terms_meet_across_spellings_and_scripts() -> None:
    assert set(related.terms_of("Forty people died in the district")) == set(
        related.terms_of("40 people died in the districts")
    )
    assert "flood" in related.terms_of("flooded") and "flood" in related.terms_of("floods")
    assert related.terms_of("the and of") == []
    assert {"洪水", "死亡"} <= set(related.terms_of("洪水で40人が死亡した"))
    assert len(related.term_hashes(" ".join(f"word{n}x" for n in range(40)))) == related.MAX_TERMS


# --- duplicates ------------------------------------------------------------------------------


def test_a_likely_duplicate_is_marked_at_creation_and_listed(j: Journey) -> None:
    first = j.create(text=GOVERNOR, claimant="the regional governor")
    other = j.create(text=BANK)
    second = j.create(text=GOVERNOR_AGAIN)
    assert similarity(GOVERNOR, GOVERNOR_AGAIN) >= 0.6

    marks = [e for e in _events(j, second["id"]) if e["type"] == "claim.duplicate_suspected"]
    assert len(marks) == 1
    assert [d["claim_id"] for d in marks[0]["data"]["duplicates"]] == [first["id"]]
    assert marks[0]["data"]["duplicates"][0]["similarity"] >= 0.6
    assert not [e for e in _events(j, first["id"]) if e["type"] == "claim.duplicate_suspected"]
    assert not [e for e in _events(j, other["id"]) if e["type"] == "claim.duplicate_suspected"]
    # Marked, not hidden or merged.
    assert j.get(second["id"])["state"] == "submitted"

    listed = _related(j, second["id"])
    assert listed["claim_id"] == second["id"]
    assert [(d["claim_id"], d["state"]) for d in listed["duplicates"]] == [(first["id"], "submitted")]
    assert listed["duplicates"][0]["text"] == GOVERNOR
    assert "flagged when the claim was created" in listed["duplicates"][0]["reason"]
    back = _related(j, first["id"])
    assert [d["claim_id"] for d in back["duplicates"]] == [second["id"]]
    assert "% similar" in back["duplicates"][0]["reason"]
    assert _related(j, other["id"])["duplicates"] == []


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "Губернатор заявил, что в наводнении погибли 40 человек.",
            "Губернатор сообщил, что в наводнении погибли 40 человек.",
        ),
        ("도지사는 홍수로 40명이 사망했다고 밝혔다.", "도지사는 홍수로 40명이 숨졌다고 밝혔다."),
        ("洪水で40人が死亡したと知事が述べた。", "知事によると洪水で40人が死亡した。"),
    ],
)
def test_duplicates_in_other_scripts(j: Journey, a: str, b: str) -> None:
    first = j.create(text=a)
    second = j.create(text=b)
    marks = [e for e in _events(j, second["id"]) if e["type"] == "claim.duplicate_suspected"]
    assert [d["claim_id"] for d in marks[0]["data"]["duplicates"]] == [first["id"]]


def test_batch_and_edits_keep_the_index_current(j: Journey) -> None:
    r = j.client.post(
        "/api/v1/claims:batch", json={"items": [{"text": HOMES}, {"text": HOMES + " "}]}, headers=j.contributor.headers
    )
    ids = [res["claim"]["id"] for res in r.json()["results"]]
    assert [d["claim_id"] for d in _related(j, ids[1])["duplicates"]] == [ids[0]]
    marks = [e for e in _events(j, ids[1]) if e["type"] == "claim.duplicate_suspected"]
    assert marks and marks[0]["data"]["duplicates"][0]["similarity"] == 1.0

    # After an edit the claim is found by what it says now.
    edited = j.create(text=BANK)
    r = j.client.patch(f"/api/v1/claims/{edited['id']}", json={"text": AIDLINE}, headers=j.editor.headers)
    assert r.status_code == 200
    newcomer = j.create(text="The Lower Vale floods have left more than 100 people dead, Aidline says.")
    marks = [e for e in _events(j, newcomer["id"]) if e["type"] == "claim.duplicate_suspected"]
    assert [d["claim_id"] for d in marks[0]["data"]["duplicates"]] == [edited["id"]]


def test_duplicate_check_reads_a_bounded_number_of_claims(j: Journey, database, settings) -> None:
    """Fifty claims sharing only common words with a newcomer: the check reads at most
    CREATE_PER_TERM of them per term and scores at most CREATE_SCORED."""
    with database.transaction() as s:
        for n in range(50):
            text = f"Officials said people were killed in district {n} of the region."
            claims_service.create_claim(
                s, principal=j.contributor.principal, data=ClaimCreate(text=text), settings=settings
            )
    with database.read_session() as s:
        claim = s.execute(sa.text("SELECT id, text FROM claims ORDER BY id DESC LIMIT 1")).one()
        hashes = related.term_hashes(claim.text)
        shared = related._sharing(s, hashes, exclude=claim.id, per_term=related.CREATE_PER_TERM)
    assert sum(shared.values()) <= related.CREATE_PER_TERM * len(hashes)
    assert len(related._best_sharing(shared, len(hashes), related.CREATE_SCORED)) <= related.CREATE_SCORED


# --- figures ---------------------------------------------------------------------------------


def test_three_parties_figures_for_the_same_event_side_by_side(j: Journey) -> None:
    governor = j.create(text=GOVERNOR, claimant="the regional governor")
    aidline = j.create(text=AIDLINE, claimant="Aidline")
    residents = j.create(
        text=RESIDENTS,
        claimant="the residents' committee",
        figure={"low": 61, "high": 61, "counted": "dead", "unit": "people", "as_of": "2026-03-04"},
    )
    homes = j.create(text=HOMES, claimant="Aidline")  # a figure, but of homes
    same_claimant = j.create(
        text="The governor's office said 38 people were killed in Lower Vale.", claimant="the regional governor"
    )
    j.create(text=BANK, claimant="the central bank")

    view = _related(j, governor["id"])
    figures = {f["claim_id"]: f for f in view["figures"]}
    assert set(figures) == {aidline["id"], residents["id"]}
    assert homes["id"] not in figures and same_claimant["id"] not in figures
    assert figures[aidline["id"]]["claimant"] == "Aidline"
    assert (
        figures[aidline["id"]]["figure"]["low"] == 100.0
        and figures[aidline["id"]]["figure"]["qualifier"] == "more than"
    )
    assert figures[aidline["id"]]["reason"] == (
        "both count people killed; 40\u2013? vs 100\u2013? (the regional governor vs Aidline)"
    )
    assert figures[residents["id"]]["figure"]["as_of"] == "2026-03-04"  # the stated figure, not a parse
    assert "40\u2013? vs 61" in figures[residents["id"]]["reason"]
    # Worded differently: figures, not duplicates (the governor's own restatement is one).
    assert [d["claim_id"] for d in view["duplicates"]] == [same_claimant["id"]]

    from_residents = {f["claim_id"] for f in _related(j, residents["id"])["figures"]}
    assert {governor["id"], aidline["id"]} <= from_residents


# --- links by hand ---------------------------------------------------------------------------


def test_link_and_unlink_by_hand(j: Journey, database) -> None:
    a = j.create(text=GOVERNOR)
    b = j.create(text=BANK)
    path = f"/api/v1/claims/{a['id']}/related/{b['id']}"
    r = j.client.post(path, json={"reason": "same press conference"}, headers=j.editor.headers)
    assert r.status_code == 201, r.text
    assert r.json() | {"linked_at": None} == {
        "claim_id": a["id"],
        "other_id": b["id"],
        "reason": "same press conference",
        "linked_by": j.editor.id,
        "linked_at": None,
    }
    # Idempotent, from either side.
    again = j.client.post(f"/api/v1/claims/{b['id']}/related/{a['id']}", headers=j.editor.headers)
    assert again.status_code == 200 and again.json()["reason"] == "same press conference"
    for this, that in ((a, b), (b, a)):
        linked = _related(j, this["id"])["linked"]
        assert [(x["claim_id"], x["reason"], x["linked_by"]) for x in linked] == [
            (that["id"], "same press conference", j.editor.id)
        ]
        updates = [e["data"] for e in _events(j, this["id"]) if e["type"] == "claim.updated"]
        assert updates == [{"related_linked": that["id"], "reason": "same press conference"}]

    assert j.client.delete(path, headers=j.editor.headers).status_code == 204
    assert j.client.delete(path, headers=j.editor.headers).status_code == 204
    assert _related(j, a["id"])["linked"] == [] and _related(j, b["id"])["linked"] == []
    for this, that in ((a, b), (b, a)):
        updates = [e["data"] for e in _events(j, this["id"]) if e["type"] == "claim.updated"]
        assert updates[-1] == {"related_unlinked": that["id"]} and len(updates) == 2

    # No reason given: the view says it was by hand.
    assert j.client.post(path, headers=j.admin.headers).status_code == 201
    assert _related(j, a["id"])["linked"][0]["reason"] == "linked by hand"


def test_link_refusals(j: Journey, database) -> None:
    a = j.create(text=GOVERNOR)
    b = j.create(text=BANK)
    before = _audit_count(database)
    checks = [
        (j.client.post, f"/api/v1/claims/{a['id']}/related/{a['id']}", j.editor, 422),
        (j.client.post, f"/api/v1/claims/{a['id']}/related/999999", j.editor, 404),
        (j.client.post, f"/api/v1/claims/999999/related/{a['id']}", j.editor, 404),
        (j.client.post, f"/api/v1/claims/{a['id']}/related/x", j.editor, 404),
        (j.client.delete, f"/api/v1/claims/{a['id']}/related/999999", j.editor, 404),
        (j.client.delete, f"/api/v1/claims/{a['id']}/related/{a['id']}", j.editor, 422),
        (j.client.post, f"/api/v1/claims/{a['id']}/related/{b['id']}", j.checker, 403),
        (j.client.delete, f"/api/v1/claims/{a['id']}/related/{b['id']}", j.contributor, 403),
        (j.client.post, f"/api/v1/claims/{a['id']}/related/{b['id']}", None, 401),
    ]
    for method, path, who, status in checks:
        r = method(path, headers=who.headers if who else {})
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = j.client.post(f"/api/v1/claims/{a['id']}/related/{b['id']}", json={"note": "x"}, headers=j.editor.headers)
    assert r.status_code == 422
    assert j.client.get("/api/v1/claims/999999/related", headers=j.viewer.headers).status_code == 404
    assert j.client.get(f"/api/v1/claims/{a['id']}/related").status_code == 401
    assert _audit_count(database) == before
