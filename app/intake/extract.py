"""Pick the check-worthy sentences out of a pasted story.

``extract_candidates`` splits the text into sentences (keeping offsets), finds figures, dates, hedges and
attributions in each, scores every sentence for check-worthiness and returns those at or above
``SCORE_THRESHOLD``.  Everything is rule-based and runs offline; only English is supported.

Scoring (added up, then clipped to [0, 1]):

* a figure: 0.45 when it is a substantial quantity (a casualty or people count, money, a percentage, a
  measurement, a qualified or vague amount, or anything of 10 or more), 0.2 for a small bare count or a
  duration;
* an attributed statement: 0.3 (+0.1 when the verb itself asserts or disputes, such as "claimed",
  "estimated", "denied"; +0.05 for a direct quotation);
* a hedge: its own weight, 0.1 ("preliminary") to 0.45 ("could not be independently verified");
* a superlative or comparison ("deadliest", "the highest since 1998", "more than double"): 0.2;
* a past date: 0.3 for a year, 0.15 for a calendar day, 0.05 for a weekday or relative day;
* minus 0.2 for a statement of intent, wish or obligation with nothing else checkable in it ("we will
  finish the job"), minus 0.1 for evaluative wording with nothing else checkable in it ("a hammer blow",
  "historic"), minus 0.2 for a question, minus 0.3 for fragments under four words.

With the threshold at 0.3 an attributed statement, a substantial figure, a strong hedge or a past year is
enough on its own; a small count or a weekday needs something else next to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.intake.attribution import Attribution, attribute_sentences
from app.intake.dates import DateMention, find_dates
from app.intake.hedges import Hedge, find_hedges
from app.intake.language import SUPPORTED_LANGUAGES, detect_language, normalise_language
from app.intake.numbers import OUTCOME_WORDS, PEOPLE_NOUNS, VAGUE_QUALIFIERS, Figure, find_figures
from app.intake.segment import Sentence, split_sentences

__all__ = [
    "SCORE_THRESHOLD",
    "Candidate",
    "ExtractionResult",
    "Figure",
    "extract_candidates",
]

SCORE_THRESHOLD = 0.3

W_FIGURE_STRONG = 0.45
W_FIGURE_WEAK = 0.2
W_ATTRIBUTED = 0.3
W_CLAIM_VERB = 0.1
W_DIRECT_QUOTE = 0.05
W_SUPERLATIVE = 0.2
W_PAST_YEAR = 0.3
W_PAST_DAY = 0.15
W_WEEKDAY = 0.05
P_INTENT = 0.2
P_OPINION = 0.1
P_QUESTION = 0.2
P_FRAGMENT = 0.3

_SUPERLATIVE = re.compile(
    r"\b(?:deadliest|largest|biggest|highest|lowest|worst|longest|shortest|fastest|slowest|driest|wettest|"
    r"hottest|coldest|strongest|weakest|heaviest|busiest|poorest|richest|oldest|youngest|smallest|greatest|"
    r"steepest|sharpest|most\s+(?!of\b)\w+|least\s+(?!of\b)\w+|record|record-breaking|unprecedented|"
    r"first\s+time|first[- ]ever|never\s+before|more\s+than\s+(?:double|twice|triple)|doubled|tripled|"
    r"quadrupled|halved|twice\s+(?:as|the)|(?:more|fewer|less|higher|lower|greater|larger|smaller|faster|"
    r"slower)\s+than\s+(?!\$?\d)(?!(?:one|two|three|four|five|six|seven|eight|nine|ten|a\s+dozen|"
    r"dozens|hundreds|thousands|half)\b)|the\s+only)\b",
    re.I,
)
_INTENT = re.compile(
    r"\b(?:will|would|should|shall|must|might|hopes?|hoped|wants?|wanted|wish(?:es)?|intends?|aims?\s+to|"
    r"plans?\s+to|committed|determined|believes?|feels?|thinks?|has\s+to|have\s+to|going\s+to|"
    r"promised?|vowed?|pledged?|'ll)\b",
    re.I,
)
_OPINION = re.compile(
    r"\b(?:tragic|tragedy|shameful|shame|outrageous|unacceptable|disgraceful|disgrace|appalling|terrible|awful|"
    r"horrible|heartbreaking|heartbroken|betrayal|betrayed|historic|fantastic|wonderful|brilliant|excellent|"
    r"amazing|incredible|proud|grateful|thankful|delighted|happy|sad|angry|furious|disappointed|disappointing|"
    r"encouraging|welcome|welcomed|unfair|ridiculous|absurd|nonsense|scandalous|insult|insulting|nightmare|"
    r"miracle|hammer\s+blow|body\s+blow|clear\s+message|wake-up\s+call|a\s+joke|beautiful|fair|deserve|"
    r"deserves|love|hate)\b",
    re.I,
)
_UNSUPPORTED_NOTE = "language '{lang}' is not supported yet; candidates are extracted for English only"


@dataclass(frozen=True)
class Candidate:
    """A check-worthy sentence.  ``text == source_text[start:end]``."""

    index: int
    text: str
    start: int
    end: int
    claimant: str | None
    figures: list[Figure]
    dates: list[str]
    hedges: list[str]
    score: float
    reasons: list[str]
    sentence_index: int = 0
    attribution: str = "none"  # "sentence", "quote", "carried" or "none": where the claimant came from

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "claimant": self.claimant,
            "figures": [f.to_dict() for f in self.figures],
            "dates": list(self.dates),
            "hedges": list(self.hedges),
            "score": self.score,
            "reasons": list(self.reasons),
            "sentence_index": self.sentence_index,
            "attribution": self.attribution,
        }


@dataclass(frozen=True)
class ExtractionResult:
    candidates: list[Candidate] = field(default_factory=list)
    note: str | None = None
    language: str = "en"
    sentences: int = 0  # how many sentences were considered

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [c.to_dict() for c in self.candidates],
            "note": self.note,
            "language": self.language,
            "sentences": self.sentences,
        }


def _figure_strength(f: Figure) -> float:
    if f.is_duration:
        return W_FIGURE_WEAK
    words = set((f.counted or "").split())
    if f.qualifier is not None or f.qualifier in VAGUE_QUALIFIERS:
        return W_FIGURE_STRONG
    if f.unit and f.unit != "people":
        return W_FIGURE_STRONG
    if words & OUTCOME_WORDS or words & PEOPLE_NOUNS:
        return W_FIGURE_STRONG
    value = f.value or 0.0
    if value >= 10:
        return W_FIGURE_STRONG
    return W_FIGURE_WEAK


def _score(
    sentence: Sentence,
    figures: list[Figure],
    dates: list[DateMention],
    hedges: list[Hedge],
    att: Attribution,
) -> tuple[float, list[str]]:
    score = 0.0
    reasons: list[str] = []
    if figures:
        strongest = max(_figure_strength(f) for f in figures)
        score += strongest
        if all(f.is_duration for f in figures):
            reasons.append("duration")
        else:
            reasons.append("figure" if strongest == W_FIGURE_STRONG else "small figure")
        if any(f.unit == "%" for f in figures):
            reasons.append("percentage")
        if any(f.unit and len(f.unit) == 3 and f.unit.isupper() for f in figures):
            reasons.append("money")
        if any(f.qualifier in VAGUE_QUALIFIERS for f in figures):
            reasons.append("vague quantity")
    if att.claimant:
        score += W_ATTRIBUTED
        reasons.append("attributed statement")
        if att.source in ("quote", "carried"):
            reasons.append("attribution carried from a neighbouring sentence")
        if att.is_claim_verb:
            score += W_CLAIM_VERB
            reasons.append(f"claim verb: {att.verb}")
        if att.direct_quote:
            score += W_DIRECT_QUOTE
            reasons.append("direct quote")
    if hedges:
        score += max(h.weight for h in hedges)
        reasons.extend(f"hedge: {h.label}" for h in hedges)
    if _SUPERLATIVE.search(sentence.text):
        score += W_SUPERLATIVE
        reasons.append("superlative/comparison")
    date_weight = 0.0
    for d in dates:
        if d.past is False:
            continue
        if d.kind in ("year", "decade") and d.past:
            date_weight = max(date_weight, W_PAST_YEAR if d.kind == "year" else W_WEEKDAY)
        elif d.kind in ("day", "month") and d.past is not False:
            date_weight = max(date_weight, W_PAST_DAY)
        else:
            date_weight = max(date_weight, W_WEEKDAY)
    if date_weight >= W_PAST_DAY:
        reasons.append("date of a past event")
    score += date_weight
    substantive = bool(figures) or bool(hedges)
    if not substantive and _INTENT.search(sentence.text):
        score -= P_INTENT
        reasons.append("intent or obligation (less checkable)")
    elif not substantive and date_weight < W_PAST_DAY and _OPINION.search(sentence.text):
        score -= P_OPINION
        reasons.append("opinion (less checkable)")
    if sentence.text.rstrip("\"'\u201d\u2019) ").endswith("?"):
        score -= P_QUESTION
        reasons.append("question")
    if len(re.findall(r"\w+", sentence.text)) < 4:
        score -= P_FRAGMENT
        reasons.append("fragment")
    return max(0.0, min(1.0, round(score, 3))), reasons


def extract_candidates(
    text: str, *, language: str | None = None, published_at: datetime | None = None
) -> ExtractionResult:
    """Return the check-worthy sentences of ``text`` with claimant, figures, dates, hedges and a score."""
    lang = normalise_language(language) or detect_language(text)
    if lang not in SUPPORTED_LANGUAGES and lang != "und":
        return ExtractionResult([], _UNSUPPORTED_NOTE.format(lang=lang), lang, 0)
    sentences = split_sentences(text)
    figures = [find_figures(s.text, s.start) for s in sentences]
    hedges = [find_hedges(s.text, s.start) for s in sentences]
    dates = [find_dates(s.text, published_at, s.start) for s in sentences]
    attributions = attribute_sentences(text, sentences, [bool(h) for h in hedges])
    candidates: list[Candidate] = []
    for i, s in enumerate(sentences):
        score, reasons = _score(s, figures[i], dates[i], hedges[i], attributions[i])
        if score < SCORE_THRESHOLD:
            continue
        candidates.append(
            Candidate(
                index=len(candidates),
                text=s.text,
                start=s.start,
                end=s.end,
                claimant=attributions[i].claimant,
                figures=figures[i],
                dates=_unique(d.value for d in dates[i]),
                hedges=_unique(h.text.lower() for h in hedges[i]),
                score=score,
                reasons=reasons,
                sentence_index=i,
                attribution=attributions[i].source,
            )
        )
    return ExtractionResult(candidates, None, lang if lang != "und" else "en", len(sentences))


def _unique(items: Any) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
