"""Near-duplicate detection and "same quantity" matching for candidate claims.

* ``normalise`` makes texts comparable in any script: Unicode NFKC, case folding, every decimal digit
  mapped to ASCII, thousands separators dropped, "1.2 million" / "3.5bn" / English number words turned
  into plain integers, "%" / "per cent" turned into "percent", punctuation and symbols removed, spaces
  collapsed.
* ``similarity`` is the cosine similarity of character-trigram counts of the normalised texts (word
  boundaries padded with a space).  It needs no tokeniser or word list, so it works the same for
  Cyrillic, Hangul, Arabic or CJK text, and is robust to inflection and small rewordings.
* ``same_quantity`` says whether two figures count the same thing (dead / killed / died / deaths are one
  thing; homes / houses are one thing ...) in texts about the same event, even when the numbers differ,
  and returns a short reason for the desk.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from app.intake._util import wordset
from app.intake.numbers import PEOPLE_NOUNS, SCALES, SHORT_SCALES, TENS, UNITS

DUPLICATE_THRESHOLD = 0.6
"""Two texts at or above this ``similarity`` are treated as the same claim."""

CONTEXT_THRESHOLD = 0.3
"""Two figures are about the same event when their texts share a content word (other than the counted
words) or the similarity of their remaining content words reaches this."""

# Synonym classes for what a figure counts.  Checked in this order: a noun class ("homes flooded" is
# about homes) wins over an outcome class ("people flooded" would be about people).
NOUN_CLASSES: tuple[tuple[str, frozenset[str]], ...] = (
    ("homes", wordset("homes home houses house dwellings buildings households flats apartments")),
    ("votes", wordset("votes vote ballots ballot")),
    ("seats", wordset("seats seat")),
    ("cases", wordset("cases case infections infected")),
    ("jobs", wordset("jobs job posts layoffs redundancies")),
    ("beds", wordset("beds bed")),
    ("doses", wordset("doses dose vaccines")),
    ("vehicles", wordset("vehicles tanks trucks cars")),
    ("schools", wordset("schools school")),
    ("hospitals", wordset("hospitals hospital clinics facilities")),
    ("turnout", wordset("turnout")),
    ("inflation", wordset("inflation prices")),
    ("unemployment", wordset("unemployment jobless")),
    ("growth", wordset("growth gdp economy")),
)
OUTCOME_CLASSES: tuple[tuple[str, frozenset[str]], ...] = (
    ("people killed", wordset("dead killed died deaths death toll fatalities lives bodies perished drowned")),
    ("people injured", wordset("injured wounded hurt")),
    ("people missing", wordset("missing unaccounted")),
    ("people displaced", wordset("displaced evacuated evacuees fled homeless refugees crossed")),
    ("people arrested", wordset("arrested detained detainees prisoners")),
    ("people hospitalised", wordset("hospitalised hospitalized admitted patients")),
    ("casualties", wordset("casualties")),
)
COMPATIBLE = {frozenset({"casualties", "people killed"}), frozenset({"casualties", "people injured"})}
_STOP = wordset(
    """the a an of in on at to for from with by and or but were was are is be been had have has that which
    who this these those it its their his her they he she we i as than said says told according after
    before since more less about up over some at least nearly almost people percent"""
)
_WORDNUM = re.compile(
    r"\b(?:(?:"
    + "|".join(sorted([*UNITS, *TENS, "hundred", "thousand", "million", "billion", "dozen"], key=len, reverse=True))
    + r")(?:[\s-]+(?:and[\s-]+)?)?)+\b"
)
_SCALED = re.compile(r"(\d+(?:\.\d+)?)\s*(million|billion|trillion|thousand|bn|mn|m|k)\b")
_THOUSANDS = re.compile(r"(?<!\d)(\d{1,3})(?:[,\u00a0\u202f ](\d{3}))+(?!\d)")


def _ascii_digits(text: str) -> str:
    out = []
    for ch in text:
        if ch.isdigit() and not ("0" <= ch <= "9"):
            d = unicodedata.decimal(ch, None)
            out.append(str(d) if d is not None else ch)
        else:
            out.append(ch)
    return "".join(out)


def _words_to_number(match: re.Match[str]) -> str:
    words = [w for w in re.split(r"[\s-]+", match.group(0).strip()) if w and w != "and"]
    total, current = 0, 0
    for w in words:
        if w in UNITS:
            current += UNITS[w]
        elif w in TENS:
            current += TENS[w]
        elif w == "hundred":
            current = (current or 1) * 100
        elif w == "dozen":
            current = (current or 1) * 12
        elif w in SCALES:
            total += (current or 1) * int(SCALES[w])
            current = 0
    trailing = " " if match.group(0).endswith((" ", "-")) else ""
    return f"{total + current}{trailing}"


def _scaled(match: re.Match[str]) -> str:
    scale = SCALES.get(match.group(2)) or SHORT_SCALES.get(match.group(2), 1.0)
    value = float(match.group(1)) * scale
    return str(int(value)) if value == int(value) else str(value)


def normalise(text: str) -> str:
    """Canonical form of ``text`` for comparison (see the module docstring)."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _ascii_digits(t)
    t = _THOUSANDS.sub(
        lambda m: m.group(0).replace(",", "").replace(" ", "").replace("\u00a0", "").replace("\u202f", ""), t
    )
    t = re.sub(r"\bper\s+cent\b|%", " percent ", t)
    t = _SCALED.sub(_scaled, t)
    t = _WORDNUM.sub(_words_to_number, t)
    out = []
    for i, ch in enumerate(t):
        cat = unicodedata.category(ch)
        if cat[0] in "PS" or cat in ("Cc", "Cf"):
            keep_decimal = ch == "." and 0 < i < len(t) - 1 and t[i - 1].isdigit() and t[i + 1].isdigit()
            out.append(ch if keep_decimal else " ")
        elif cat[0] == "M" and not out:
            continue
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def _ngrams(text: str, n: int) -> Counter[str]:
    padded = f" {text} "
    return Counter(padded[i : i + n] for i in range(len(padded) - n + 1))


def _dense_script(text: str) -> bool:
    """Han, kana and Hangul pack a word into one or two characters: compare bigrams there."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    dense = sum(
        1
        for ch in letters
        if 0x1100 <= ord(ch) <= 0x11FF
        or 0x3040 <= ord(ch) <= 0x30FF
        or 0x3400 <= ord(ch) <= 0x9FFF
        or 0xAC00 <= ord(ch) <= 0xD7AF
    )
    return dense / len(letters) > 0.3


def similarity(a: str, b: str) -> float:
    """Cosine similarity of character n-grams of the normalised texts, in [0, 1].

    Trigrams in general; bigrams when either text is mostly Han, kana or Hangul."""
    na, nb = normalise(a), normalise(b)
    if not na and not nb:
        return 1.0
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    n = 2 if _dense_script(na) or _dense_script(nb) else 3
    ca, cb = _ngrams(na, n), _ngrams(nb, n)
    dot = sum(v * cb[k] for k, v in ca.items() if k in cb)
    norm = math.sqrt(sum(v * v for v in ca.values())) * math.sqrt(sum(v * v for v in cb.values()))
    return max(0.0, min(1.0, dot / norm)) if norm else 0.0


def is_duplicate(a: str, b: str, threshold: float = DUPLICATE_THRESHOLD) -> bool:
    return similarity(a, b) >= threshold


def find_duplicates(texts: Sequence[str], threshold: float = DUPLICATE_THRESHOLD) -> list[tuple[int, int, float]]:
    """All pairs (i, j, score) with i < j whose similarity reaches ``threshold``, best first."""
    pairs = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            score = similarity(texts[i], texts[j])
            if score >= threshold:
                pairs.append((i, j, round(score, 3)))
    return sorted(pairs, key=lambda p: -p[2])


# ------------------------------------------------------------------------------------ same quantity
def counted_class(counted: str | None, unit: str | None = None) -> str | None:
    """Map what a figure counts to a synonym class ("people killed", "homes", "money:USD" ...)."""
    if unit and len(unit) == 3 and unit.isupper():
        return f"money:{unit}"
    words = set(re.findall(r"[a-z]+", (counted or "").lower()))
    for name, members in NOUN_CLASSES:
        if words & members:
            return name
    for name, members in OUTCOME_CLASSES:
        if words & members:
            return name
    if words & PEOPLE_NOUNS:
        return "people"
    if unit == "%":
        return "percent" if not words else f"percent:{sorted(words)[0]}"
    if words:
        head = sorted(words, key=len)[-1]
        return head[:-1] if head.endswith("s") else head
    return None


def _compatible(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    if a == b:
        return True
    return frozenset({a, b}) in COMPATIBLE


def _content_words(text: str) -> set[str]:
    words = re.findall(r"[^\W\d_]+", normalise(text))
    return {w for w in words if w not in _STOP and len(w) > 2}


def _fmt(v: Any) -> str:
    if v is None:
        return "?"
    f = float(v)
    return f"{int(f):,}" if f == int(f) else f"{f:,.2f}".rstrip("0").rstrip(".")


def describe_range(fig: Mapping[str, Any]) -> str:
    """ "40", "61-?", "?-9,000", "30-40"."""
    low, high = fig.get("low"), fig.get("high")
    if low is not None and high is not None and float(low) == float(high):
        return _fmt(low)
    return f"{_fmt(low)}\u2013{_fmt(high)}"


def same_quantity(
    fig_a: Mapping[str, Any],
    fig_b: Mapping[str, Any],
    text_a: str,
    text_b: str,
    *,
    claimant_a: str | None = None,
    claimant_b: str | None = None,
    same_story: bool = False,
) -> str | None:
    """A short reason when two figures (``Figure.to_dict()`` shape) count the same thing, else None.

    The counted things must fall in the same synonym class, and the texts must share event context
    (see ``CONTEXT_THRESHOLD``); skip that check with ``same_story=True`` for sentences of one article.
    """
    class_a = counted_class(fig_a.get("counted"), fig_a.get("unit"))
    class_b = counted_class(fig_b.get("counted"), fig_b.get("unit"))
    if not _compatible(class_a, class_b):
        return None
    if class_a == "people" and not same_story:
        return None  # "40 people" and "300 people" are too generic to pair across stories
    if not same_story:
        counted_words = set(re.findall(r"[a-z]+", f"{fig_a.get('counted') or ''} {fig_b.get('counted') or ''}"))
        for _, members in (*NOUN_CLASSES, *OUTCOME_CLASSES):
            if counted_words & members:
                counted_words |= members
        words_a = _content_words(text_a) - counted_words
        words_b = _content_words(text_b) - counted_words
        if not words_a & words_b and similarity(" ".join(sorted(words_a)), " ".join(sorted(words_b))) < (
            CONTEXT_THRESHOLD
        ):
            return None
    label = class_a if class_a == class_b else f"{class_a} / {class_b}"
    assert label is not None
    if label.startswith("money:"):
        label = f"amounts in {label.split(':', 1)[1]}"
    elif label.startswith("percent:"):
        label = f"percentages of {label.split(':', 1)[1]}"
    agree = "the same figure" if describe_range(fig_a) == describe_range(fig_b) else None
    reason = f"both count {label}; {describe_range(fig_a)} vs {describe_range(fig_b)}"
    if agree:
        reason += f" ({agree})"
    if claimant_a or claimant_b:
        reason += f" ({claimant_a or 'unattributed'} vs {claimant_b or 'unattributed'})"
    return reason


def compare_figures(candidates: Sequence[Any], *, same_story: bool = True) -> list[tuple[int, int, str]]:
    """For candidates of one story: (index_a, index_b, reason) for every pair of figures that count the
    same thing, first figure pair per candidate pair only."""
    out: list[tuple[int, int, str]] = []
    for i, a in enumerate(candidates):
        for b in candidates[i + 1 :]:
            for fa in a.figures:
                reason = None
                for fb in b.figures:
                    reason = same_quantity(
                        fa.to_dict(),
                        fb.to_dict(),
                        a.text,
                        b.text,
                        claimant_a=a.claimant,
                        claimant_b=b.claimant,
                        same_story=same_story,
                    )
                    if reason:
                        break
                if reason:
                    out.append((a.index, b.index, reason))
                    break
    return out
