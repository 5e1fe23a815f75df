"""Find date mentions in an English sentence and resolve them against the publication time.

Output strings are ISO ``yyyy-mm-dd`` when a calendar day can be worked out, otherwise the span as written
("in 1987", "in October", "last week").  Weekdays and "yesterday"/"today" need ``published_at``; without it
they are returned as written.  A weekday is taken to be the most recent such day on or before publication
unless the sentence talks about the future ("will", "is due to", "next ..."), in which case the next one is
used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

MONTH_NUMBERS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sep": 9,
    "sept": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)"
)
_YEAR = r"(?:1[5-9]\d\d|20\d\d|2100)"
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTH_DAY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+({_YEAR})\b)?")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\b\.?(?:,?\s+({_YEAR})\b)?")
_MONTH_YEAR = re.compile(
    rf"\b(?:(?i:in|since|until|by|from|during|of|before|after|early|late|mid)[- ]+)*({_MONTH})\.?,?\s+({_YEAR})\b"
)
_PREP_MONTH = re.compile(
    rf"\b(?:in|since|until|by|from|during|before|after)\s+(?:(?:early|late|mid)[- ])?({_MONTH})\b(?!\.?\s*\d)"
)
_YEAR_MENTION = re.compile(
    rf"\b(?:(?:in|since|until|by|from|during|before|after|of)\s+(?:the\s+)?(?:(?:early|late|mid)[- ])?)?"
    rf"({_YEAR})\b(?![-\u2013/]\d)(?!s\b)(?!,\d)"
)
_DECADE = re.compile(r"\b(?:in|since|during|of)?\s*the\s+((?:1[5-9]|20)\d0s)\b")
_WEEKDAY = re.compile(
    r"\b(?:(last|this|next|on|since|until|by|from|early|late)\s+)?"
    r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)('s)?"
    r"(?:\s+(morning|afternoon|evening|night))?\b"
)
_RELATIVE_DAY = re.compile(r"\b(yesterday|today|tonight|last night|this morning|this afternoon|this evening)\b", re.I)
_RELATIVE_SPAN = re.compile(
    r"\b(last|this|next|earlier this|later this|the previous|the following)\s+(week|month|year|spring|summer|"
    r"autumn|winter|weekend|quarter)\b",
    re.I,
)
_FUTURE = re.compile(
    r"\b(will|'ll|shall|is due|are due|due to|scheduled|is expected to|are expected to|expected to|plans? to|"
    r"planned|is set to|are set to|upcoming|next|to be held|would|expects?|forecasts?)\b",
    re.I,
)
_DETERMINER_BEFORE = re.compile(r"\b(its|the|a|every|his|her|their|our|each)\s+$", re.I)


@dataclass(frozen=True)
class DateMention:
    value: str  # ISO date when resolved, otherwise the span as written
    text: str
    start: int
    end: int
    kind: str  # "day", "year", "month", "decade", "weekday", "relative"
    resolved: bool
    past: bool | None  # True when the date is before publication (or is a past year); None when unknown


def _local_date(published_at: datetime | None) -> date | None:
    return published_at.date() if published_at is not None else None


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def find_dates(sentence: str, published_at: datetime | None = None, offset: int = 0) -> list[DateMention]:
    pub = _local_date(published_at)
    future = bool(_FUTURE.search(sentence))
    found: list[DateMention] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(value: str, a: int, b: int, kind: str, resolved: bool, past: bool | None) -> None:
        taken.append((a, b))
        found.append(DateMention(value, sentence[a:b], a + offset, b + offset, kind, resolved, past))

    def day_value(y: int | None, m: int, d: int) -> tuple[str | None, bool | None]:
        if y is None:
            if pub is None:
                return None, None
            y = pub.year
            cand = _safe_date(y, m, d)
            if cand is None:
                return None, None
            if not future and cand > pub + timedelta(days=7):
                y -= 1
            elif future and cand < pub - timedelta(days=7):
                y += 1
        resolved = _safe_date(y, m, d)
        if resolved is None:
            return None, None
        return resolved.isoformat(), (resolved < pub) if pub else None

    for m in _ISO.finditer(sentence):
        d = _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if d:
            add(d.isoformat(), m.start(), m.end(), "day", True, (d < pub) if pub else None)
    for rx, order in ((_MONTH_DAY, "md"), (_DAY_MONTH, "dm")):
        for m in rx.finditer(sentence):
            if not free(m.start(), m.end()):
                continue
            if order == "md":
                month, day_s, year_s = m.group(1), m.group(2), m.group(3)
            else:
                day_s, month, year_s = m.group(1), m.group(2), m.group(3)
            day = int(day_s)
            if not 1 <= day <= 31:
                continue
            value, past = day_value(int(year_s) if year_s else None, MONTH_NUMBERS[month.lower()], day)
            add(value or m.group(0), m.start(), m.end(), "day", value is not None, past)
    for m in _MONTH_YEAR.finditer(sentence):
        if free(m.start(), m.end()) and m.group(1).lower() in MONTH_NUMBERS:
            year = int(m.group(2))
            past = (year, MONTH_NUMBERS[m.group(1).lower()]) < (pub.year, pub.month) if pub else None
            add(m.group(0), m.start(), m.end(), "month", False, past)
    for m in _PREP_MONTH.finditer(sentence):
        if free(m.start(), m.end()):
            add(m.group(0), m.start(), m.end(), "month", False, None if future else True)
    for m in _YEAR_MENTION.finditer(sentence):
        if not free(m.start(1), m.end(1)):
            continue
        before = sentence[max(0, m.start(1) - 1) : m.start(1)]
        if before in "$€£#" and before:
            continue
        after = sentence[m.end(1) : m.end(1) + 12].lower()
        if re.match(r"\s*(people|residents|homes|houses|votes|cases|jobs|troops|soldiers)\b", after) and not m.group(
            0
        ).startswith(("in", "since", "until", "by", "from", "during", "before", "after", "of")):
            continue  # "2000 people marched" is a count, not a year
        year = int(m.group(1))
        reference_year = pub.year if pub else date.today().year
        past = True if year < reference_year else None
        add(m.group(0).strip(), m.start(), m.end(), "year", False, past)
    for m in _DECADE.finditer(sentence):
        if free(m.start(1), m.end(1)):
            add(m.group(0).strip(), m.start(), m.end(), "decade", False, True)
    for m in _WEEKDAY.finditer(sentence):
        if not free(m.start(), m.end()):
            continue
        if m.group(1) is None and _DETERMINER_BEFORE.search(sentence[: m.start()]):
            continue  # "its Thursday market"
        modifier = (m.group(1) or "").lower()
        weekday = WEEKDAYS[m.group(2).lower()]
        span_start = m.start()
        span_end = m.end()
        if pub is None:
            add(sentence[span_start:span_end], span_start, span_end, "weekday", False, None)
            continue
        forward = modifier == "next" or (future and modifier != "last")
        if forward:
            delta = (weekday - pub.weekday()) % 7
            if modifier == "next" and delta == 0:
                delta = 7
            d = pub + timedelta(days=delta)
        else:
            delta = (pub.weekday() - weekday) % 7
            if modifier == "last" and delta == 0:
                delta = 7
            d = pub - timedelta(days=delta)
        add(d.isoformat(), span_start, span_end, "weekday", True, d < pub)
    for m in _RELATIVE_DAY.finditer(sentence):
        if not free(m.start(), m.end()):
            continue
        word = m.group(1).lower()
        if pub is None:
            add(m.group(0), m.start(), m.end(), "relative", False, None)
            continue
        d = pub - timedelta(days=1) if word in ("yesterday", "last night") else pub
        add(d.isoformat(), m.start(), m.end(), "relative", True, d < pub)
    for m in _RELATIVE_SPAN.finditer(sentence):
        if free(m.start(), m.end()):
            first = m.group(1).lower()
            past = True if first in ("last", "earlier this", "the previous") else None
            add(m.group(0), m.start(), m.end(), "relative", False, past)
    found.sort(key=lambda d: d.start)
    return found
