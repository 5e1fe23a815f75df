"""Hedges: wording that says a statement is unverified, uncertain, disputed or unsupported."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NEG_ABLE = (
    r"(?:could\s+not|couldn['\u2019]t|cannot|can['\u2019]t|can\s+not|"
    r"(?:was|were|is|are|am|has\s+been|have\s+been|had\s+been)\s+(?:unable|not\s+able)\s+to|"
    r"(?:has|have|had)\s+not\s+been\s+able\s+to|(?:it\s+(?:is|was)\s+)?(?:not\s+possible|impossible)\s+to)"
)
_NEG_PLAIN = (
    r"(?:did\s+not|didn['\u2019]t|has\s+not|hasn['\u2019]t|have\s+not|haven['\u2019]t|had\s+not|was\s+not|were\s+not|"
    r"is\s+not|are\s+not|has\s+yet\s+to|have\s+yet\s+to|not\s+yet|had\s+yet\s+to)"
)
_ADVERBS = r"(?:\s+(?:be|been|independently|immediately|yet|officially|so\s+far|fully|separately|reliably))*"
_VERIFY = (
    r"\s+(?:verif(?:y|ied)|confirm(?:ed)?|establish(?:ed)?|corroborat(?:e|ed)|authenticat(?:e|ed)|"
    r"substantiat(?:e|ed)|check(?:ed)?|determine[d]?)\b"
)


@dataclass(frozen=True)
class Hedge:
    label: str  # canonical: "could not be verified", "claimed without evidence", ...
    text: str  # the words as they appear
    weight: float  # how strongly it marks the sentence as worth checking
    start: int
    end: int


_PATTERNS: tuple[tuple[re.Pattern[str], str, float], ...] = (
    (re.compile(_NEG_ABLE + _ADVERBS + _VERIFY, re.I), "could not be verified", 0.45),
    (re.compile(_NEG_PLAIN + _ADVERBS + _VERIFY, re.I), "not confirmed", 0.4),
    (
        re.compile(r"\bno\s+(?:official\s+|independent\s+|immediate\s+)*(?:confirmation|verification)\b", re.I),
        "not confirmed",
        0.4,
    ),
    (re.compile(r"\b(?:unverified|unconfirmed|uncorroborated|unsubstantiated)\b", re.I), "unverified", 0.45),
    (
        re.compile(
            r"\b(?:without\s+(?:providing\s+|offering\s+|giving\s+|presenting\s+|citing\s+|producing\s+)?(?:any\s+)?"
            r"(?:evidence|proof)|(?:offered|provided|gave|presented|cited|produced|showed)\s+no\s+(?:evidence|proof)|"
            r"(?:did\s+not|didn['\u2019]t|has\s+not|have\s+not)\s+(?:provide|offer|give|present|cite|produce|show)\s+"
            r"(?:any\s+)?(?:evidence|proof)|no\s+evidence\s+(?:was|has\s+been|had\s+been)\s+"
            r"(?:provided|offered|presented|given))",
            re.I,
        ),
        "claimed without evidence",
        0.45,
    ),
    (re.compile(r"\b(?:reportedly|allegedly|purportedly|supposedly|ostensibly)\b", re.I), "reportedly", 0.4),
    (
        re.compile(r"\b(?:appears?|appeared|seems?|seemed)\s+to\s+(?:show|depict|be)\b|\bapparently\b", re.I),
        "apparently",
        0.35,
    ),
    (
        re.compile(
            r"\bit\s+(?:is|was|remains|remained|is\s+still|was\s+still)\s+(?:not\s+(?:immediately\s+|yet\s+)?clear|"
            r"unclear|not\s+known|unknown)\b|\b(?:it\s+is|it\s+was)\s+not\s+(?:immediately\s+)?known\b",
            re.I,
        ),
        "unclear",
        0.4,
    ),
    (
        re.compile(
            r"\b(?:is|are|was|were)\s+(?:widely\s+)?(?:thought|believed|said|understood|rumoured|rumored)\s+to\b", re.I
        ),
        "believed, not confirmed",
        0.35,
    ),
    (
        re.compile(
            r"\b(?:hearing|unconfirmed|unverified|conflicting|circulating|there\s+(?:are|were|have\s+been))\s+reports\b|"
            r"^\W*reports\s+(?:that|of)\b",
            re.I,
        ),
        "unconfirmed reports",
        0.4,
    ),
    (
        re.compile(
            r"\b(?:disputed|disputes|dispute|contested|contests|denied|denies|deny|rejected|rejects|refuted|refutes)\b",
            re.I,
        ),
        "disputed",
        0.15,
    ),
    (re.compile(r"\b(?:preliminary|provisional|initial\s+estimates?)\b", re.I), "preliminary", 0.1),
)


def find_hedges(sentence: str, offset: int = 0) -> list[Hedge]:
    """Hedges in ``sentence``, at most one per canonical label, in order of appearance."""
    found: dict[str, Hedge] = {}
    covered: list[tuple[int, int]] = []
    for rx, label, weight in _PATTERNS:
        for m in rx.finditer(sentence):
            if any(m.start() < e and m.end() > s for s, e in covered):
                continue
            covered.append((m.start(), m.end()))
            if label not in found:
                found[label] = Hedge(label, m.group(0).strip(), weight, m.start() + offset, m.end() + offset)
    return sorted(found.values(), key=lambda h: h.start)
