"""Tests for app.intake.similarity: normalisation, duplicates across scripts, same-quantity pairing."""

from __future__ import annotations

import json

import pytest

from app.intake.extract import extract_candidates
from app.intake.numbers import find_figures
from app.intake.similarity import (
    DUPLICATE_THRESHOLD,
    compare_figures,
    counted_class,
    describe_range,
    find_duplicates,
    is_duplicate,
    normalise,
    same_quantity,
    similarity,
)
from tests.intake.quality import DATA_DIR


def test_normalise() -> None:
    assert normalise("  Up to 9,000 HOMES \u2014 \u201cflooded\u201d!  ") == "up to 9000 homes flooded"
    assert normalise("Forty-two dead; 1.2 million people") == "42 dead 1200000 people"
    assert normalise("12% or twelve per cent") == "12 percent or 12 percent"
    assert normalise("$3.5bn") == "3500000000"
    assert normalise("２０２４年") == "2024年"  # full-width digits (NFKC)
    assert normalise("٤٠ شخصا") == "40 شخصا"  # Arabic-Indic digits
    assert normalise("ÉLECTION") == normalise("élection")
    assert normalise("...") == ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "Forty people died in the Kesteren district, the governor said.",
            "40 people died in the Kesteren district, said the governor.",
        ),
        ("Up to 9,000 homes were flooded.", "Up to 9000 homes were flooded!"),
        ("Губернатор заявил, что погибли 40 человек.", "Губернатор сообщил, что погибли 40 человек."),
        ("도지사는 홍수로 40명이 사망했다고 밝혔다.", "도지사는 홍수로 40명이 숨졌다고 밝혔다."),
        ("قال المحافظ إن 40 شخصا لقوا حتفهم في الفيضانات", "قال المحافظ إن ٤٠ شخصا لقوا حتفهم في الفيضانات"),
        ("洪水で40人が死亡したと知事が述べた。", "知事によると洪水で40人が死亡した。"),
    ],
)
def test_duplicates_across_scripts(a: str, b: str) -> None:
    assert similarity(a, b) >= DUPLICATE_THRESHOLD
    assert is_duplicate(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Forty people died in the Kesteren district.", "Up to 9,000 homes were flooded across the region."),
        ("Forty people died in the district.", "The central bank kept its rate at 9.5%."),
        ("도지사는 홍수로 40명이 사망했다고 밝혔다.", "중앙은행은 기준금리를 동결했다."),
        ("Губернатор заявил, что погибли 40 человек.", "Центральный банк сохранил ставку."),
        ("قال المحافظ إن 40 شخصا لقوا حتفهم في الفيضانات", "رفع البنك المركزي سعر الفائدة"),
    ],
)
def test_different_claims_are_not_duplicates(a: str, b: str) -> None:
    assert similarity(a, b) < DUPLICATE_THRESHOLD


def test_similarity_bounds_and_symmetry() -> None:
    assert similarity("", "") == 1.0
    assert similarity("abc", "") == 0.0
    a, b = "The dam was built in 1987.", "The dam was completed in 1978."
    assert similarity(a, b) == pytest.approx(similarity(b, a))
    assert 0.0 <= similarity(a, b) <= 1.0
    assert similarity(a, a) == 1.0


def test_find_duplicates() -> None:
    texts = [
        "The ministry said 61 people died.",
        "Officials expect rain on Friday.",
        "The ministry said sixty-one people died.",
    ]
    assert [(i, j) for i, j, _ in find_duplicates(texts)] == [(0, 2)]


def _fig(text: str) -> dict[str, object]:
    return find_figures(text)[0].to_dict()


def test_counted_classes_treat_synonyms_as_one() -> None:
    assert counted_class("people died") == counted_class("dead") == counted_class("civilian deaths") == "people killed"
    assert counted_class("soldiers killed") == "people killed"
    assert counted_class("homes flooded") == counted_class("houses") == "homes"
    assert counted_class("wounded") == counted_class("people injured") == "people injured"
    assert counted_class(None, "USD") == "money:USD"


def test_same_quantity_conflicting_death_tolls() -> None:
    a = "Forty people died in the Kesteren floods, the governor said."
    b = "An opposition lawmaker claimed that over 100 people had been killed in the Kesteren floods."
    reason = same_quantity(_fig(a), _fig(b), a, b, claimant_a="governor", claimant_b="opposition lawmaker")
    assert reason == "both count people killed; 40 vs 100\u2013? (governor vs opposition lawmaker)"


def test_same_quantity_vague_and_exact() -> None:
    a = "Hospital staff in Kesteren spoke of dozens of dead."
    b = "Ministry figures show 61 dead and 140 missing in Kesteren."
    assert same_quantity(_fig(a), _fig(b), a, b) == "both count people killed; 24\u2013? vs 61"
    missing = find_figures(b)[1].to_dict()
    assert same_quantity(_fig(a), missing, a, b) is None  # dead is not missing


def test_same_quantity_needs_same_thing_and_context() -> None:
    homes = "Up to 9,000 homes were flooded in Kesteren."
    deaths = "Forty people died in Kesteren."
    assert same_quantity(_fig(homes), _fig(deaths), homes, deaths) is None
    other_story = "Forty people were killed when a bus crashed on a mountain road in Peru."
    assert same_quantity(_fig(deaths), _fig(other_story), deaths, other_story) is None
    assert same_quantity(_fig(deaths), _fig(other_story), deaths, other_story, same_story=True) is not None


def test_same_quantity_agreeing_figures() -> None:
    a = "The ministry said 61 people were killed in the floods."
    b = "Local officials counted 61 deaths from the floods."
    assert same_quantity(_fig(a), _fig(b), a, b) == "both count people killed; 61 vs 61 (the same figure)"


def test_describe_range() -> None:
    assert describe_range({"low": 40.0, "high": 40.0}) == "40"
    assert describe_range({"low": 61.0, "high": None}) == "61\u2013?"
    assert describe_range({"low": None, "high": 9000.0}) == "?\u20139,000"
    assert describe_range({"low": 2.5, "high": 3.0}) == "2.5\u20133"


def test_compare_figures_on_the_flood_story() -> None:
    article = json.loads((DATA_DIR / "disaster_flood_wire.json").read_text(encoding="utf-8"))
    cands = extract_candidates(article["text"]).candidates
    pairs = compare_figures(cands)
    by_text = {(cands[i].text[:20], cands[j].text[:20]): r for i, j, r in pairs}
    death_pairs = [r for r in by_text.values() if r.startswith("both count people killed")]
    # governor (40), lawmaker (100+), hospital staff (dozens), ministry (61): every pair is flagged
    assert len(death_pairs) == 6
    assert any("40 vs 61" in r for r in death_pairs)
