"""Tests for the rule-based candidate extractor (app.intake.extract) and its parts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.intake.extract import SCORE_THRESHOLD, Candidate, extract_candidates
from app.intake.language import detect_language
from app.intake.numbers import find_figures
from app.intake.segment import split_sentences
from tests.intake import quality

WED = datetime(2025, 4, 16, 15, 0, tzinfo=UTC)  # a Wednesday


def one(text: str, **kw: object) -> Candidate:
    result = extract_candidates(text, **kw)  # type: ignore[arg-type]
    assert len(result.candidates) == 1, [c.text for c in result.candidates]
    return result.candidates[0]


def fig(text: str) -> list[tuple[float | None, float | None, str | None]]:
    return [(f.low, f.high, f.qualifier) for f in find_figures(text)]


# ------------------------------------------------------------------------------------------ figures
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Forty people died.", [(40, 40, None)]),
        ("Forty-two people died.", [(42, 42, None)]),
        ("Two dozen houses burned.", [(24, 24, None)]),
        ("A dozen soldiers were hurt.", [(12, 12, None)]),
        ("One hundred and twenty people were rescued.", [(120, 120, None)]),
        ("Half a million people fled.", [(500_000, 500_000, None)]),
        ("The storm destroyed 9,000 homes.", [(9000, 9000, None)]),
        ("It will cost 1.2 million euros.", [(1_200_000, 1_200_000, None)]),
        ("The fund holds 3.5bn.", [(3.5e9, 3.5e9, None)]),
        ("A $4 billion loan was agreed.", [(4e9, 4e9, None)]),
        ("Prices rose 12% last year.", [(12, 12, None)]),
        ("Support fell to 38 per cent.", [(38, 38, None)]),
        ("Between 30 and 40 people were hurt.", [(30, 40, "between")]),
        ("Some 30-40 people were hurt.", [(30, 40, "between")]),
        ("They expect 30 to 40 arrests.", [(30, 40, "between")]),
        ("It could cost $3-4 billion.", [(3e9, 4e9, "between")]),
        ("At least 11 people were killed.", [(11, None, "at least")]),
        ("Up to 9,000 homes were flooded.", [(None, 9000, "up to")]),
        ("As many as 200 were detained.", [(None, 200, "up to")]),
        ("More than 100 people died.", [(100, None, "more than")]),
        ("Over 100 people died.", [(100, None, "more than")]),
        ("Fewer than 50 beds remain.", [(None, 50, "fewer than")]),
        ("Nearly 500 families left.", [(None, 500, "nearly")]),
        ("Almost 70 percent voted.", [(None, 70, "nearly")]),
        ("About 300 people gathered.", [(300, 300, "about")]),
        ("An estimated 45,000 people live there.", [(45_000, 45_000, "about")]),
        ("Dozens of people were hurt.", [(24, None, "dozens")]),
        ("Hundreds of homes were damaged.", [(200, None, "hundreds")]),
        ("Thousands of people marched.", [(2000, None, "thousands")]),
        ("Tens of thousands of people marched.", [(20_000, None, "tens of thousands")]),
        ("Several hundred people marched.", [(200, None, "hundreds")]),
        ("Police said 40 or more cars were burned.", [(40, None, "at least")]),
        ("Crowds of 100-plus gathered.", [(100, None, "more than")]),
    ],
)
def test_figure_values(text: str, expected: list[tuple[float | None, float | None, str | None]]) -> None:
    assert fig(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The dam was built in 1987.",
        "The plant opened in the 1970s.",
        "The quake struck at 04:12 local time.",
        "The meeting starts at 3 p.m. in the hall.",
        "Talks resume on April 16 in Geneva.",
        "Talks resume on 16 April in Geneva.",
        "A 45-year-old man was arrested.",
        "Mr. Gray, 71, was treated in hospital.",
        "Workers at the No. 2 plant walked out.",
        "The COVID-19 ward reopened.",
        "The 19th-century church was restored.",
        "The 2021 census counted them.",
        "They held a three-way debate.",
        "She was elected in 2019, and again in 2023.",
    ],
)
def test_not_figures(text: str) -> None:
    assert find_figures(text) == []


def test_figure_units_and_counted() -> None:
    [f] = find_figures("The interior ministry said 61 people were killed.")
    assert f.counted == "people killed"
    assert f.unit == "people"
    [g] = find_figures("Turnout was 67.3%, the commission said.")
    assert (g.unit, g.counted) == ("%", "turnout")
    [h] = find_figures("The firm reported revenue of $1.8bn.")
    assert (h.unit, h.low, h.counted) == ("USD", 1.8e9, "revenue")
    [k] = find_figures("The epicentre was about 10 km south of the town.")
    assert (k.unit, k.qualifier) == ("km", "about")
    a, b = find_figures("The ministry's figures show 61 dead and 140 missing.")
    assert (a.counted, b.counted) == ("dead", "missing")


def test_figure_spans_cover_the_number() -> None:
    text = "Officials said up to 9,000 homes and an estimated £25m of crops were lost."
    spans = [f.text for f in find_figures(text)]
    assert spans == ["up to 9,000", "an estimated £25m"]
    for f in find_figures(text):
        assert text[f.start : f.end] == f.text


def test_change_is_not_a_range() -> None:
    text = "Average pay rose from $58,400 to $61,900 over the period."
    assert fig(text) == [(58_400, 58_400, None), (61_900, 61_900, None)]


# ---------------------------------------------------------------------------------------- sentences
def test_sentence_splitting_abbreviations_decimals_quotes_ellipses() -> None:
    text = (
        "Dr. Lena Ortiz met Gen. Ruiz in the U.S. capital on Jan. 12. Prices rose 2.5 percent... "
        'Then it stopped. "We left at night. The water was rising," she said. Plant No. 5 shut.'
    )
    got = [s.text for s in split_sentences(text)]
    assert got == [
        "Dr. Lena Ortiz met Gen. Ruiz in the U.S. capital on Jan. 12.",
        "Prices rose 2.5 percent...",
        "Then it stopped.",
        '"We left at night.',
        'The water was rising," she said.',
        "Plant No. 5 shut.",
    ]


def test_offsets_round_trip() -> None:
    text = (
        "  HEADLINE LINE\n\nThe agency said 40 people died on Tuesday.\r\n"
        "- Up to 9,000 homes were flooded, officials said.\n\u201cIt could not be verified,\u201d he added."
    )
    result = extract_candidates(text, published_at=WED)
    assert result.candidates
    for c in result.candidates:
        assert text[c.start : c.end] == c.text
        for f in c.figures:
            assert text[f.start : f.end] == f.text
    for s in split_sentences(text):
        assert text[s.start : s.end] == s.text


# ---------------------------------------------------------------------------------------- claimants
@pytest.mark.parametrize(
    ("text", "claimant"),
    [
        ("At least 12 people died, the fire service said on Sunday.", "the fire service"),
        ("At least 12 people died, said Ana Ruiz, a paramedic at the scene.", "Ana Ruiz, a paramedic"),
        ("The fire service said at least 12 people had died.", "The fire service"),
        ("According to the coastguard, at least 12 people died.", "the coastguard"),
        ("At least 12 people died, according to figures released by the coastguard.", "the coastguard"),
        ("The health ministry's figures show 300 new cases.", "The health ministry"),
        ("Figures from the health ministry show 300 new cases.", "the health ministry"),
        ("A spokesperson for the mayor told reporters that 300 homes were empty.", "A spokesperson for the mayor"),
        ("In a statement, the port authority said 14 ships were stuck.", "the port authority"),
        ("The city council, citing its own survey, said 2,000 flats were empty.", "The city council"),
        ("Local media, citing police sources, reported 30 arrests.", "Local media"),
        ("Thirty arrests were reported by local media.", "local media"),
        ('"We counted 40 bodies," a rescue worker told the agency.', "a rescue worker"),
        ('"We counted 40 bodies," said rescue worker Omar Haddad.', "rescue worker Omar Haddad"),
        ("The union estimates that 3,000 jobs will go.", "The union"),
        ("Opposition leader Kim Lavoie claimed that 10,000 ballots were missing.", "Opposition leader Kim Lavoie"),
        ("Kim Lavoie, who leads the opposition, alleged that 10,000 ballots were missing.", "Kim Lavoie"),
        ("Rebels put the death toll at 90.", "Rebels"),
    ],
)
def test_claimant_in_sentence(text: str, claimant: str) -> None:
    assert one(text).claimant == claimant


@pytest.mark.parametrize(
    "text",
    [
        "More than 40 people died in the flood.",
        "The bridge was built in 1962.",
        "The region lost 200 jobs in 2019.",
    ],
)
def test_no_claimant(text: str) -> None:
    c = extract_candidates(text).candidates
    assert c and all(x.claimant is None for x in c)


def test_carried_attribution_pronoun_and_added() -> None:
    text = (
        "Health Minister Lena Ortiz said 300 beds had been added this year. "
        "She added that waiting times had fallen by a third. "
        "The ministry also said 45 nurses had been hired."
    )
    cands = extract_candidates(text).candidates
    # "She added" is the minister; "the ministry" is not the minister, and no ministry was named before
    assert [c.claimant for c in cands] == ["Health Minister Lena Ortiz"] * 2 + ["The ministry"]


def test_carried_attribution_generic_organisation() -> None:
    text = (
        "The Ministry of Water said the reservoir held 40 million cubic metres. "
        "Rain is expected later in the week. "
        "The ministry also said 12 villages had no running water."
    )
    cands = extract_candidates(text).candidates
    assert cands[-1].claimant == "The Ministry of Water"


def test_quote_continuing_into_next_sentence() -> None:
    text = '"We lost 14 cows. The barn collapsed in the night," said farmer Rui Costa.'
    cands = extract_candidates(text).candidates
    assert [c.claimant for c in cands] == ["farmer Rui Costa", "farmer Rui Costa"]
    assert cands[0].attribution == "quote"


def test_standalone_quote_inherits_previous_speaker() -> None:
    text = 'Mayor Ines Baptiste said the clinic was closed. "We have no doctors and no insulin."'
    cands = extract_candidates(text).candidates
    assert cands[-1].claimant == "Mayor Ines Baptiste"
    assert cands[-1].attribution == "carried"


def test_hedge_pointing_back_inherits_claimant() -> None:
    text = "The army said it had shot down 12 drones. The claim could not be independently verified."
    cands = extract_candidates(text).candidates
    assert [c.claimant for c in cands] == ["The army", "The army"]
    assert "could not be independently verified" in cands[1].hedges


def test_pronoun_it_resolves_to_subject_of_sentence() -> None:
    text = "The operator posted a video it says shows the dam intact."
    assert one(text).claimant == "The operator"


# ------------------------------------------------------------------------------------------- hedges
@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The footage could not be independently verified.", "could not be verified"),
        ("Reuters was unable to confirm the figure.", "could not be verified"),
        ("We have not been able to establish when it was filmed.", "could not be verified"),
        ("The shelling reportedly hit a school.", "reportedly"),
        ("The mayor allegedly took bribes.", "reportedly"),
        ("The unconfirmed report said 20 died.", "unverified"),
        ("He claimed without evidence that 5,000 votes were forged.", "claimed without evidence"),
        ("She offered no evidence for the claim.", "claimed without evidence"),
        ("It was not clear whether anyone was hurt.", "unclear"),
        ("It remains unclear who fired first.", "unclear"),
        ("The gunmen are believed to have fled north.", "believed, not confirmed"),
        ("A video appears to show tanks in the square.", "apparently"),
    ],
)
def test_hedges(text: str, label: str) -> None:
    c = one(text)
    assert any(r == f"hedge: {label}" for r in c.reasons), c.reasons
    assert c.hedges


# -------------------------------------------------------------------------------------------- dates
def test_dates_resolve_weekdays_and_days() -> None:
    c = one("The governor said on Tuesday that 40 people died on April 12.", published_at=WED)
    assert c.dates == ["2025-04-15", "2025-04-12"]


def test_dates_future_weekday_goes_forward() -> None:
    c = one("The minister will announce 300 new posts on Friday.", published_at=WED)
    assert c.dates == ["2025-04-18"]


def test_dates_unresolved_without_publication_time() -> None:
    c = one("The governor said on Tuesday that 40 people died.")
    assert c.dates == ["on Tuesday"]


def test_year_of_past_event_is_a_candidate() -> None:
    c = one("The dam was built in 1987.", published_at=WED)
    assert c.dates == ["in 1987"]
    assert "date of a past event" in c.reasons
    assert c.figures == []


def test_yesterday_and_iso() -> None:
    c = one("Officials said yesterday that 3 people died on 2025-04-01.", published_at=WED)
    assert c.dates == ["2025-04-15", "2025-04-01"]


# ----------------------------------------------------------------------------------- score, language
def test_background_sentences_are_dropped() -> None:
    text = (
        "The town sits in a valley of orchards and vineyards. "
        "Residents remember the old market with fondness. "
        "The river has shaped life here for centuries."
    )
    assert extract_candidates(text).candidates == []


def test_scores_are_in_range_and_ordered_by_text() -> None:
    text = (
        "Officials said 40 people died. The region is known for its lakes. "
        "The claim could not be verified. The dam was built in 1987."
    )
    cands = extract_candidates(text, published_at=WED).candidates
    assert [c.index for c in cands] == list(range(len(cands)))
    assert all(SCORE_THRESHOLD <= c.score <= 1 for c in cands)
    assert [c.start for c in cands] == sorted(c.start for c in cands)


def test_to_dict_is_plain_data() -> None:
    c = one("Officials said up to 9,000 homes were flooded on Tuesday.", published_at=WED)
    d = c.to_dict()
    assert d["claimant"] == "Officials"
    assert d["figures"][0] == {
        "low": None,
        "high": 9000.0,
        "qualifier": "up to",
        "counted": "homes flooded",
        "unit": None,
        "text": "up to 9,000",
        "start": 15,
        "end": 26,
    }
    assert d["dates"] == ["2025-04-15"]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("지난 화요일 홍수로 40명이 사망했다고 도지사가 밝혔다. 댐은 1987년에 건설되었다.", "ko"),
        ("Губернатор заявил, что во время наводнения погибли 40 человек.", "ru"),
        ("قال المحافظ إن 40 شخصا لقوا حتفهم في الفيضانات.", "ar"),
        ("Le gouverneur a déclaré que 40 personnes sont mortes dans les inondations de la région.", "fr"),
        ("The governor said 40 people died in the floods across the region.", "en"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_unsupported_language_returns_note() -> None:
    result = extract_candidates("지난 화요일 홍수로 40명이 사망했다고 도지사가 밝혔다.")
    assert result.candidates == []
    assert result.note == "language 'ko' is not supported yet; candidates are extracted for English only"
    explicit = extract_candidates("The governor said 40 people died.", language="de-AT")
    assert explicit.candidates == []
    assert explicit.note is not None and "'de'" in explicit.note
    assert extract_candidates("The governor said 40 people died.", language="en-GB").note is None


def test_empty_text() -> None:
    result = extract_candidates("")
    assert result.candidates == []


# ---------------------------------------------------------------------------------- quality on data
def test_article_files_are_well_formed() -> None:
    articles = quality.load_articles()
    assert len(articles) >= 10
    assert sum(1 for a in articles if a.get("held_out")) >= 3
    for a in articles:
        datetime.fromisoformat(a["published_at"].replace("Z", "+00:00"))
        for item in a["expected"]:
            assert a["text"].count(item["text_contains"]) == 1, (a["name"], item["text_contains"])
            assert item["kind"] in quality.KINDS


# Bars set a little below what the held-out articles scored on their first, blind run (precision 0.95,
# recall 1.00 for figures, 0.86 for attributed claims, 0.80 for hedges, claimant accuracy 0.88), leaving
# room for the small sample; they apply to the held-out set and to all articles together.
MIN_RECALL_FIGURE = 0.9
MIN_RECALL_ATTRIBUTED = 0.8
MIN_RECALL_HEDGE = 0.75
MIN_PRECISION = 0.85
MIN_CLAIMANT_ACCURACY = 0.8


def test_quality_against_labelled_articles(capsys: pytest.CaptureFixture[str]) -> None:
    tune, held, every = quality.evaluate(quality.load_articles())
    with capsys.disabled():
        print()
        print(quality.table([("tuning", tune), ("held-out", held), ("all", every)]))
    for name, t in (("all", every), ("held-out", held)):
        assert t.recall("figure") >= MIN_RECALL_FIGURE, name
        assert t.recall("attributed") >= MIN_RECALL_ATTRIBUTED, name
        assert t.recall("hedge") >= MIN_RECALL_HEDGE, name
        assert t.precision >= MIN_PRECISION, name
        assert t.claimant_accuracy >= MIN_CLAIMANT_ACCURACY, name
