"""Rule-based sentence splitting that keeps character offsets into the original text.

Design notes
------------
* Newlines are treated as paragraph boundaries (wire copy, press releases and live blogs put one
  paragraph per line).  A line that does not end in terminal punctuation is treated as hard-wrapped and
  joined with the next one when the next line starts in lower case, or when it is long (60+ characters)
  and does not look like a heading.
* Inside a paragraph a boundary is a run of ``.``, ``!``, ``?`` or ``...`` (optionally followed by closing
  quotes or brackets), then whitespace, then something that can start a sentence: an upper-case letter,
  a digit, an opening quote or bracket, a bullet, or a letter from a script without case.
* A full stop after a known abbreviation (Mr., Dr., Gen., Jan., No. 5 ...) or after a single initial is not
  a boundary.  Dotted acronyms (U.S., a.m.) end a sentence only when the next word is a typical sentence
  opener ("The", "He", "But" ...).
* Decimal numbers never contain whitespace after the dot, so they are never split.
* Leading bullet markers ("- ", "• ") are left out of the sentence span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Abbreviations (lower-cased, without the final dot) after which a full stop does not end a sentence.
TITLE_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "mx",
        "dr",
        "prof",
        "gen",
        "col",
        "lt",
        "sgt",
        "capt",
        "cpl",
        "maj",
        "adm",
        "gov",
        "sen",
        "rep",
        "st",
        "jr",
        "sr",
        "rev",
        "fr",
        "hon",
        "pres",
        "supt",
        "insp",
        "det",
        "cmdr",
        "messrs",
        "mme",
        "mlle",
        "sra",
    }
)
OTHER_ABBREVIATIONS = frozenset(
    {
        "no",
        "nos",
        "vs",
        "v",
        "approx",
        "est",
        "dept",
        "univ",
        "cf",
        "al",
        "fig",
        "vol",
        "pp",
        "ca",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mon",
        "tue",
        "tues",
        "wed",
        "thu",
        "thur",
        "thurs",
        "fri",
        "sat",
        "sun",
        "mt",
        "ft",
        "ave",
        "blvd",
        "rd",
        "hwy",
        "km",
        "tel",
        "ext",
        "art",
        "sec",
        "ch",
    }
)
# Abbreviations that frequently end a sentence as well ("... and so on, etc. The next").
SENTENCE_FINAL_ABBREVIATIONS = frozenset({"etc", "inc", "ltd", "co", "corp", "plc", "llc", "bros"})

# Words that typically open a new sentence; used to decide whether "U.S." or "etc." ended one.
SENTENCE_OPENERS = frozenset(
    {
        "the",
        "a",
        "an",
        "he",
        "she",
        "it",
        "they",
        "we",
        "i",
        "you",
        "but",
        "and",
        "in",
        "on",
        "at",
        "this",
        "that",
        "these",
        "those",
        "there",
        "his",
        "her",
        "its",
        "their",
        "our",
        "my",
        "meanwhile",
        "however",
        "after",
        "before",
        "when",
        "while",
        "officials",
        "police",
        "as",
        "some",
        "many",
        "most",
        "one",
        "two",
        "three",
        "according",
        "earlier",
        "later",
        "last",
        "since",
        "for",
        "if",
        "yet",
        "still",
        "separately",
        "also",
        "both",
        "neither",
        "no",
        "asked",
    }
)

_BOUNDARY = re.compile(r"(?:\.{3}|\u2026|[.!?])+[\"'\u201d\u2019»)\]]*(?=\s)")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.'\u2019-]*)$")
_DOTTED_ACRONYM = re.compile(r"^(?:[A-Za-z]\.){2,}$")
_BULLET = re.compile(r"(?:[-\u2013\u2014•*·]|\d{1,2}[.)])\s+")
_TERMINAL = re.compile(r"[.!?\u2026:;\"'\u201d\u2019)\]]\s*$")


@dataclass(frozen=True)
class Sentence:
    """A sentence span; ``text[start:end]`` of the original text equals ``text``."""

    start: int
    end: int
    text: str
    paragraph: int


def _looks_like_heading(line: str) -> bool:
    words = [w for w in line.split() if w[:1].isalpha()]
    if not words:
        return True
    capitalised = sum(1 for w in words if w[0].isupper())
    return capitalised / len(words) > 0.6


def _lines(text: str) -> list[tuple[int, int]]:
    """Split into (start, end) line spans, joining hard-wrapped lines."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        content = line.rstrip("\r\n")
        spans.append((pos, pos + len(content)))
        pos += len(line)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged:
            prev_start, prev_end = merged[-1]
            prev = text[prev_start:prev_end]
            cur = text[start:end].lstrip()
            if (
                prev.strip()
                and cur
                and not _TERMINAL.search(prev)
                and (cur[0].islower() or (len(prev.strip()) >= 60 and not _looks_like_heading(prev)))
            ):
                merged[-1] = (prev_start, end)
                continue
        merged.append((start, end))
    return merged


def _next_word(text: str, pos: int) -> str:
    m = re.match(r"\s*[\"'\u201c\u2018(\[]*([^\s\"'\u201c\u201d\u2018\u2019()\[\],.;:!?]+)", text[pos:])
    return m.group(1) if m else ""


def _can_start_sentence(ch: str) -> bool:
    if ch.isdigit() or ch in "\"'\u201c\u2018«([¿¡-\u2013\u2014•*":
        return True
    if ch.isalpha():
        # Upper-case letters, and letters from scripts that have no case at all.
        return ch.isupper() or ch.lower() == ch.upper()
    return False


def _is_boundary(text: str, punct_start: int, punct_end: int, next_pos: int) -> bool:
    if next_pos >= len(text):
        return True
    nxt = text[next_pos]
    if not _can_start_sentence(nxt):
        return False
    mark = text[punct_start:punct_end]
    if not mark.startswith("."):
        return True  # "!", "?" and ellipses followed by a capital end the sentence
    if mark.startswith("..."):
        return True
    m = _WORD_BEFORE.search(text, max(0, punct_start - 40), punct_start)
    if not m:
        return True
    word = m.group(1)
    lower = word.lower().rstrip(".")
    next_word = _next_word(text, next_pos)
    opener = next_word.lower() in SENTENCE_OPENERS
    if _DOTTED_ACRONYM.match(word + "."):
        return opener
    if len(word) == 1 and word.isupper():
        return False  # an initial, as in "J. Smith"
    if lower in TITLE_ABBREVIATIONS:
        return False
    if lower == "no":
        return not nxt.isdigit()
    if lower in OTHER_ABBREVIATIONS:
        return opener and not nxt.isdigit()
    if lower in SENTENCE_FINAL_ABBREVIATIONS:
        return opener
    return True


def _trim(text: str, start: int, end: int, line_start: bool) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    m = _BULLET.match(text, start, end) if line_start else None
    if m and m.end() < end:
        start = m.end()
    return start, end


def split_sentences(text: str) -> list[Sentence]:
    """Split ``text`` into sentences with offsets into ``text``."""
    sentences: list[Sentence] = []
    for paragraph, (line_start, line_end) in enumerate(_lines(text)):
        seg_start = line_start
        for m in _BOUNDARY.finditer(text, line_start, line_end):
            next_pos = m.end()
            while next_pos < line_end and text[next_pos].isspace():
                next_pos += 1
            if next_pos >= line_end:
                continue  # the end of the line closes the sentence anyway
            if _is_boundary(text, m.start(), m.end(), next_pos):
                start, end = _trim(text, seg_start, m.end(), seg_start == line_start)
                if end > start:
                    sentences.append(Sentence(start, end, text[start:end], paragraph))
                seg_start = m.end()
        start, end = _trim(text, seg_start, line_end, seg_start == line_start)
        if end > start:
            sentences.append(Sentence(start, end, text[start:end], paragraph))
    return sentences
