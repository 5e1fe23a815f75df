"""Who said it: rule-based attribution of sentences to a claimant.

Per sentence, in order of preference:

1. "according to X" (with "figures published by X" narrowed to X);
2. a clause-final or parenthetical attribution: '..., the agency said.', '..., said Mira Osei, who ...',
   '"...," she told reporters.', '..., the ministry said, but ...';
3. a subject before a reporting verb: 'The ministry also said ...', 'X, who ..., told reporters that ...',
   'In a statement, X said ...', 'X's figures show ...', 'Figures compiled by X show ...';
4. 'citing X' and passive '... was reported by X'.

Then across sentences:

* a quotation that runs over several sentences gets the attribution found anywhere in it;
* a sentence that is entirely a quotation and has no attribution of its own inherits the claimant of the
  sentence before it (news style: 'X said Y. "Z."');
* a hedge that points back ("The claim could not be verified", "Those findings ...") inherits the claimant
  of the sentence before it;
* pronouns (he, she, it, they) and bare surnames are resolved to the most recent matching person or
  organisation, and generic references ("the ministry", "the firm") to the most recent claimant or
  organisation name containing that word.

Text inside quotation marks is masked before any of the patterns run, so words inside a quote are never
mistaken for an attribution.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.intake._util import wordset
from app.intake.segment import Sentence

MASK = "\u2592"  # a character that never occurs in news copy

SPEECH_VERBS = wordset(
    """said says say saying told tells telling added adds adding stated announced announces reported
    estimated estimate estimates claimed claim claims claiming alleged alleges allege alleging insisted
    insists warned warns confirmed confirms denied denies deny denying acknowledged acknowledges
    admitted admits argued argues noted explained explains wrote writes tweeted declared declares
    maintained maintains predicted predicts projected forecast calculated recorded showed show shows
    suggested suggests indicated indicates indicate found finds revealed reveals disclosed discloses
    conceded concedes asserted asserts accused accuses blamed blames spoke described describes rejected
    rejects disputed disputes cautioned cautions stressed emphasised emphasized complained complains
    replied testified reiterated reiterates countered counters contended contends informed announce put
    puts"""
)
# Present-tense forms that are also common nouns ("the claims", "its estimates").
AMBIGUOUS_FORMS = frozenset(
    {
        "claims",
        "claim",
        "estimates",
        "estimate",
        "shows",
        "show",
        "finds",
        "reports",
        "puts",
        "put",
        "indicate",
        "deny",
        "allege",
        "say",
        "announce",
    }
)
SHOW_VERBS = frozenset(
    {
        "show",
        "shows",
        "showed",
        "suggest",
        "suggests",
        "suggested",
        "indicate",
        "indicates",
        "indicated",
        "found",
        "finds",
        "revealed",
        "reveals",
    }
)
CLAIM_VERBS = wordset(
    """claimed claims claim claiming alleged alleges allege alleging denied denies deny denying estimated
    estimates estimate insisted insists accused accuses blamed blames disputed disputes rejected rejects
    confirmed confirms reported recorded"""
)
TRAILING_VERBS = wordset(
    """said says told tells added adds wrote writes explained noted insisted insists warned warns estimated
    estimates confirmed reported stated argued cautioned stressed replied declared recalled recounts
    recounted observed"""
)
PRONOUNS = {
    "he": "person",
    "she": "person",
    "him": "person",
    "her": "person",
    "it": "org",
    "they": "any",
    "we": "self",
    "i": "self",
    "you": "self",
}
QUANTIFIER_SUBJECTS = frozenset(
    {
        "many",
        "some",
        "others",
        "few",
        "several",
        "most",
        "all",
        "both",
        "each",
        "none",
        "one",
        "someone",
        "anyone",
        "everyone",
        "nobody",
        "this",
        "that",
        "which",
        "who",
    }
)
DETERMINERS = frozenset(
    {
        "the",
        "a",
        "an",
        "these",
        "those",
        "its",
        "their",
        "his",
        "her",
        "our",
        "such",
        "any",
        "no",
        "some",
        "first",
        "most",
        "newly",
        "widely",
        "this",
        "that",
        "every",
        "each",
    }
)
AUXILIARIES = frozenset({"is", "are", "was", "were", "be", "been", "being", "am"})
NEGATIONS = frozenset(
    {
        "not",
        "never",
        "n't",
        "didn't",
        "hasn't",
        "haven't",
        "hadn't",
        "wouldn't",
        "won't",
        "cannot",
        "can't",
        "couldn't",
        "declined",
        "refused",
    }
)
MODALS = frozenset({"would", "could", "should", "might", "may", "must", "will", "shall", "can", "to"})
NP_ADVERBS = frozenset(
    {
        "also",
        "later",
        "earlier",
        "previously",
        "again",
        "further",
        "repeatedly",
        "separately",
        "then",
        "now",
        "has",
        "have",
        "had",
        "however",
        "already",
        "recently",
        "once",
        "initially",
        "first",
        "officially",
        "publicly",
        "privately",
        "reportedly",
        "jointly",
        "similarly",
        "likewise",
        "subsequently",
        "meanwhile",
        "himself",
        "herself",
        "itself",
        "themselves",
        "just",
        "only",
        "still",
        "even",
        "too",
        "did",
        "does",
        "do",
    }
)
LEADING_CONJUNCTIONS = frozenset(
    {
        "and",
        "but",
        "while",
        "as",
        "so",
        "then",
        "however",
        "meanwhile",
        "yet",
        "although",
        "though",
        "whereas",
        "because",
        "since",
        "when",
        "after",
        "before",
        "also",
        "by",
        "from",
        "with",
        "via",
        "per",
        "in",
        "on",
        "at",
        "to",
        "of",
        "identified",
        "named",
        "described",
    }
)
CLAUSE_VERBS = wordset(
    """is are was were has have had will would could can may might must shall should do does did be been
    being get got gets make made takes took take give gave given keep kept won win lost lose launched
    launched opened closed released published posted issued held hold struck killed died came went go
    goes left leave remain remained became become seized cut raised fell rose grew appear appears
    appeared seemed seems thanked visited met meets called calls"""
)
PERSON_TITLES = wordset(
    """mr mrs ms dr prof father sister brother rev commander gen general col colonel capt captain lt sgt
    governor gov mayor president minister senator sen judge justice ambassador chancellor premier
    secretary chief imam rabbi bishop sheikh"""
)
PERSON_ROLES = wordset(
    """spokesman spokeswoman spokesperson minister governor mayor director chief leader president official
    officials organiser organizer manager chair chairman chairwoman representative lawmaker mp senator
    priest commander daughter son wife husband mother father resident farmer doctor nurse epidemiologist
    economist analyst candidate councillor councilor secretary ambassador worker volunteer witness
    survivor officer teacher student researcher scientist professor lawyer prosecutor judge activist
    campaigner founder owner landowner correspondent head coordinator adviser advisor aide envoy deputy"""
)
ORG_HEADS = wordset(
    """ministry office agency department authority commission committee council government army military
    militia union alliance association federation party campaign institute programme program project
    group trust bank company firm corporation service services organisation organization network
    foundation charity coalition police court board centre center bureau observatory monitor mission
    secretariat administration cabinet parliament assembly operator station broadcaster newspaper"""
)
COMPANY_HEADS = frozenset(
    {
        "company",
        "firm",
        "manufacturer",
        "maker",
        "business",
        "employer",
        "owner",
        "carrier",
        "operator",
        "group",
        "supplier",
        "retailer",
        "lender",
        "insurer",
        "developer",
    }
)
COMPANY_SUFFIXES = wordset(
    """inc ltd plc llc corp corporation company co group holdings industries components motors systems
    technologies energy foods airlines airways pharmaceuticals pharma gmbh ag sa nv bv partners
    logistics electronics steel mining"""
)
ANAPHORIC_HEDGE = re.compile(
    r"\b(?:the|that|this|those|these|such|its|their|his|her|both)\s+(?:[a-z]+\s+){0,1}?"
    r"(?:claims?|figures?|numbers?|findings?|reports?|account|accounts|footage|video|videos|images?|clip|"
    r"photos?|photographs?|toll|estimates?|tally|allegations?|assertion|statements?|count|data|accusations?)\b"
    r"|^\W*(?:they|he|she)\s",
    re.I,
)
_ACCORDING = re.compile(r"\b[Aa]ccording\s+to\s+(?P<np>[^,;:()" + MASK + r"]+)")
_CITING = re.compile(r"\bciting\s+(?P<np>[^,;:()" + MASK + r"]+)", re.I)
_PASSIVE_BY = re.compile(
    r"\b(?:was|were|is|are|been|being)\s+(?:\w+ly\s+)?(?:reported|confirmed|announced|estimated|recorded|"
    r"stated|claimed|alleged|released|published|given|issued|disclosed|revealed|compiled|provided)\s+by\s+"
    r"(?P<np>[^,;:()" + MASK + r"]+)"
)
_TOLL_OBJECT = re.compile(
    r"\s+(?:the|its|their|his|her)\s+(?:\w+\s+){0,2}?(?:figure|number|toll|count|total|tally|cost|damage|"
    r"estimate|losses)\b",
    re.I,
)
_REVISED_TOLL = re.compile(
    r"\b(raised|revised|lowered|updated|increased|cut)\s+(?:the|its|their)\s+(?:\w+\s+){0,2}?"
    r"(?:toll|figure|count|tally|estimate|forecast|number)\b",
    re.I,
)
_ROLE_BEFORE = re.compile(r"\b(?:" + "|".join(sorted(PERSON_ROLES)) + r")\s+$", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019.-]*[A-Za-z.]|[A-Za-z]")
_TIME_TAIL = re.compile(
    r"\s+(?:on|last|this|late|early|earlier|later)\s+(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|"
    r"week|month|year|night|morning|evening|afternoon)\b.*$|\s+(?:last|this|next)\s+\w+$|\s+(?:today|yesterday|"
    r"tonight|overnight)$|\s+in\s+a\s+statement$|\s+on\s+social\s+media$",
    re.I,
)
_NAME = re.compile(
    r"(?:[A-Z][a-z]+\.?\s+)*[A-Z][a-z]+(?:[-'\u2019][A-Z]?[a-z]+)?(?:\s+[A-Z][a-z]+(?:[-'\u2019][A-Z]?[a-z]+)?)+"
)
_QUOTE_CHARS = '"\u201c\u201d'
_CALENDAR_WORDS = wordset(
    """monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december today yesterday last this next earlier later"""
)
_MEMORY = 60  # how many recent claimants and mentions pronouns and short names are resolved against
_NOT_SUBJECTS = wordset(
    """last first next later earlier also then now still only just already again once never ever often
    recently previously widely officially but and or so yet"""
)
_NUMBER_WORDS = wordset(
    """one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand
    million billion dozens hundreds thousands millions some about around nearly almost roughly more over
    up least"""
)


@dataclass(frozen=True)
class Attribution:
    claimant: str | None
    source: str  # "sentence", "quote", "carried", "none"
    verb: str | None = None
    direct_quote: bool = False

    @property
    def is_claim_verb(self) -> bool:
        return self.verb is not None and self.verb.lower() in CLAIM_VERBS


@dataclass
class _Mention:
    position: int  # character offset in the full text
    name: str
    kind: str  # "person" or "org"


@dataclass
class _State:
    text: str
    mentions: list[_Mention] = field(default_factory=list)
    claimants: list[tuple[int, str, str]] = field(default_factory=list)  # (position, name, kind)


# --------------------------------------------------------------------------------------------- quotes
def quote_masks(text: str, sentences: Sequence[Sentence]) -> tuple[list[str], list[tuple[bool, bool, bool]]]:
    """For each sentence: the sentence with quoted words masked, and (starts inside a quote, ends inside a
    quote, consists only of quotation).  Quote state is reset at every paragraph."""
    masked_all = list(text)
    inside_at = [False] * (len(text) + 1)
    para_bounds: dict[int, tuple[int, int]] = {}
    for s in sentences:
        lo, hi = para_bounds.get(s.paragraph, (s.start, s.end))
        para_bounds[s.paragraph] = (min(lo, s.start), max(hi, s.end))
    for lo, hi in para_bounds.values():
        inside = False
        for pos in range(lo, hi):
            ch = text[pos]
            inside_at[pos] = inside
            if ch == "\u201c":
                inside = True
            elif ch == "\u201d":
                inside = False
            elif ch == '"':
                inside = not inside
            elif inside and not ch.isspace():
                masked_all[pos] = MASK
            if ch in _QUOTE_CHARS:
                inside_at[pos] = True
        inside_at[hi] = inside
    masked = "".join(masked_all)
    masks: list[str] = []
    flags: list[tuple[bool, bool, bool]] = []
    for s in sentences:
        m = masked[s.start : s.end]
        masks.append(m)
        starts_inside = inside_at[s.start] and text[s.start] not in _QUOTE_CHARS
        # still inside a quotation right after the sentence's last character?
        depth = inside_at[s.start] and text[s.start] not in _QUOTE_CHARS
        for ch in text[s.start : s.end]:
            if ch == "\u201c":
                depth = True
            elif ch == "\u201d":
                depth = False
            elif ch == '"':
                depth = not depth
        letters = [c for c in m if c.isalpha()]
        has_quote = MASK in m
        fully = has_quote and not letters
        flags.append((starts_inside, depth, fully))
    return masks, flags


# ------------------------------------------------------------------------------------- noun phrases
def _words(s: str) -> list[str]:
    return s.split()


def _is_name_like(seg: str) -> bool:
    words = [w for w in seg.replace(",", " ").split() if w]
    caps = [w for w in words if w[:1].isupper()]
    return bool(words) and len(caps) >= max(1, len(words) - 1) and len(words) <= 5


def _is_appositive(seg: str) -> bool:
    w = seg.split()
    if not w:
        return False
    if w[0].lower() in ("a", "an", "the", "its", "his", "her", "their") and len(w) <= 10:
        return True
    return _is_name_like(seg)


def _strip_np(np: str) -> str:
    np = np.strip(" \t\n,;:-\u2013\u2014()[]\"'\u201c\u201d\u2018\u2019" + MASK)
    np = _TIME_TAIL.sub("", np)
    words = np.split()
    while words and words[0].lower() in LEADING_CONJUNCTIONS:
        words = words[1:]
    while words and (words[-1].lower() in NP_ADVERBS or words[-1].lower().endswith("ly")):
        words = words[:-1]
    np = " ".join(words).strip(" ,;:")
    np = re.sub(r"\s*,\s*$", "", np)
    if np.endswith(".") and not re.search(r"(?:\b[A-Z]\.|\b(?:Inc|Ltd|Co|Corp|Jr|Sr|Bros)\.)$", np):
        np = np[:-1]
    return np


def _np_before(masked: str, verb_start: int) -> str | None:
    """The subject noun phrase ending right before a reporting verb at ``verb_start``."""
    head = masked[:verb_start]
    cut = max(
        head.rfind(MASK),
        head.rfind(";"),
        head.rfind(":"),
        head.rfind("("),
        head.rfind("\u2014"),
        head.rfind(" \u2013 "),
    )
    if cut >= 0:
        head = head[cut + 1 :]
    segments = [" ".join(seg.split()) for seg in head.split(",")]
    idx = len(segments) - 1
    # words directly before the verb that are not part of the subject: "has also", "on Tuesday"
    final_words = segments[idx].split()
    while final_words and (final_words[-1].lower() in NP_ADVERBS or final_words[-1].lower().endswith("ly")):
        final_words.pop()
    segments[idx] = " ".join(final_words)
    if final_words and final_words[-1].lower() in PRONOUNS:
        return final_words[-1]
    if not final_words:
        # the verb follows a comma: walk back over parenthetical segments
        # ("X, who ..., said", "X, speaking in ..., said", "X, 71, from Y, said")
        idx -= 1
        while idx >= 0:
            seg = segments[idx]
            words = seg.split()
            if not words:
                idx -= 1
                continue
            first = words[0].lower()
            if idx > 0 and (
                first in ("who", "which", "whose", "where", "citing", "speaking", "writing", "according")
                or (first.endswith("ing") and len(words) > 1)
                or (first.endswith("ed") and len(words) > 1)
                or first in ("from", "in", "at", "of", "on", "near", "aged", "based")
                or re.fullmatch(r"\d+", seg) is not None
            ):
                idx -= 1
                continue
            break
    if idx < 0:
        return None
    np = _np_from_segment(segments[idx])
    full = np == segments[idx]
    chosen = [np]
    if idx > 0 and full:
        prev = segments[idx - 1]
        if _is_name_like(np) and _is_appositive(prev) and len(prev.split()) <= 8 and not _has_clause_verb(prev):
            # "An opposition lawmaker, Pavel Ruzic, claimed"
            chosen.insert(0, prev)
        elif _is_appositive(np) and _is_name_like(prev) and len(prev.split()) <= 5:
            # "Pavel Ruzic, an opposition lawmaker, claimed"
            chosen.insert(0, prev)
        elif np.split()[0].lower() in ("a", "an"):
            # "Figures analysed by the Open Terrain Project, a research group, show"
            before = _np_from_segment(prev)
            if before:
                chosen.insert(0, before)
    return _strip_np(", ".join(c for c in chosen if c)) or None


def _np_from_segment(segment: str) -> str:
    """Keep the words after the last clause-like word of a segment."""
    kept: list[str] = []
    for w in reversed(segment.split()):
        lw = w.lower().strip(".,")
        if lw in CLAUSE_VERBS or w.strip(".,") in ("that", "which", "who", "whom", "and", "but", "while", "when", "if"):
            break
        if lw.endswith("ed") and kept and lw not in ("united", "armed", "red", "indeed") and not w[:1].isupper():
            break
        kept.append(w)
    kept.reverse()
    return _strip_np(" ".join(kept))


def _has_clause_verb(seg: str) -> bool:
    return any(w.lower().strip(".,") in CLAUSE_VERBS for w in seg.split())


def _clean_after_verb(np: str) -> str:
    """For '... said Mira Osei, who runs a clinic.' keep 'Mira Osei' (and a short appositive)."""
    np = np.strip(" .!?" + _QUOTE_CHARS)
    parts = [p.strip() for p in np.split(",")]
    kept = [parts[0]]
    for p in parts[1:]:
        w = p.split()
        if not w or w[0].lower() in ("who", "which", "whose", "where", "when", "speaking", "adding", "according"):
            break
        if w[0].lower().endswith("ing") or len(w) > 8:
            break
        kept.append(p)
        break
    out = ", ".join(kept)
    out = re.split(r"\s+(?:who|which|whose|adding|speaking|as|in a|on|at|during|after|before|to)\s", out)[0]
    return _strip_np(out)


def _valid_np(np: str | None) -> bool:
    if not np:
        return False
    words = np.split()
    if len(words) > 16:
        return False
    if MASK in np:
        return False
    first = words[0].lower().strip(",.")
    if first[:1].isdigit():
        return False
    if len(words) == 1 and (first in QUANTIFIER_SUBJECTS or first in _NOT_SUBJECTS):
        return False
    if all(w.lower().strip(",.") in _NUMBER_WORDS for w in words):
        return False
    if all(w.lower() in DETERMINERS or w.lower() in NP_ADVERBS for w in words):
        return False
    return not (len(words) == 1 and not words[0][:1].isalpha())


def _possessor(np: str) -> str:
    """ "The interior ministry's figures" -> "The interior ministry"."""
    m = re.match(
        r"^(?P<x>.+?)['\u2019]s?\s+(?:own\s+|latest\s+|new\s+|official\s+|preliminary\s+|provisional\s+|"
        r"annual\s+|budget\s+|internal\s+)*(?:figures|data|tally|count|estimates?|records?|statistics|"
        r"report|survey|study|analysis|documents?|numbers|calculations|projections|forecasts?|"
        r"statement|video|footage|images|assessment|findings|results)$",
        np,
        re.I,
    )
    if m:
        return m.group("x")
    m = re.match(
        r"^(?:the\s+)?(?:latest\s+|new\s+|official\s+)*(?:figures|data|estimates|statistics|results|a\s+report|"
        r"report|survey|images|analysis|records|numbers)\s+(?:\w+\s+)?(?:from|by|of)\s+(?P<x>.+)$",
        np,
        re.I,
    )
    if m:
        return m.group("x")
    return np


def _has_agent(np: str) -> bool:
    """Verbs like 'show' need a source: 'the ministry's figures show', not 'images show'."""
    if re.search(r"['\u2019]s?\s", np) or re.search(r"\b(?:by|from)\s", np):
        return True
    words = np.split()
    return any(w[:1].isupper() for w in words[1:]) or (
        bool(words) and words[-1].lower().rstrip(".,") in ORG_HEADS | PERSON_ROLES | {"census", "poll", "survey"}
    )


# ------------------------------------------------------------------------------------ per sentence
@dataclass
class _Own:
    np: str
    verb: str | None
    kind: str  # "according", "trailing", "leading", "citing", "passive"


def _verb_positions(masked: str) -> list[tuple[int, int, str]]:
    out = []
    for m in re.finditer(r"[A-Za-z]+", masked):
        w = m.group().lower()
        if w in SPEECH_VERBS:
            out.append((m.start(), m.end(), w))
    return out


def _prev_words(masked: str, pos: int, n: int = 3) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z']+", masked[:pos])[-n:]]


def _noun_use(verb: str, rest: str) -> bool:
    """ "the claims were", "its estimates of", "preliminary estimates show": a noun, not a verb."""
    if verb not in AMBIGUOUS_FORMS:
        return False
    nxt = re.match(r"\s+([A-Za-z]+)", rest)
    nxt_word = nxt.group(1).lower() if nxt else ""
    return (
        nxt_word
        in (
            "were",
            "was",
            "are",
            "is",
            "have",
            "has",
            "had",
            "of",
            "and",
            "for",
            "by",
            "from",
            "about",
            "to",
            "in",
            "on",
        )
        or nxt_word in SPEECH_VERBS
        or nxt_word in CLAUSE_VERBS
    )


def _looks_like_speaker(np: str) -> bool:
    """After the verb ('..., said X.') X must name someone: 'Mira Osei', 'a rescue worker', 'the agency'."""
    words = [w.strip(".,") for w in np.split()]
    if not words or words[0].lower() in LEADING_CONJUNCTIONS:
        return False
    if words[0].lower() in ("a", "an", "the", "one", "two", "three") or words[0].lower() in PERSON_ROLES:
        return True
    return any(w[:1].isupper() and w.lower() not in _CALENDAR_WORDS for w in words)


def _reported_before(before: str) -> bool:
    """Is there reported content (words or a quotation) before a clause-final attribution?"""
    return MASK in before or any(ch.isalpha() for ch in before)


def _trailing(masked: str) -> _Own | None:
    """'..., X said (on Monday).'  '..., said X, a spokesman.'  '"...," X told reporters, ...'"""
    best: _Own | None = None
    for vs, ve, verb in _verb_positions(masked):
        if verb not in TRAILING_VERBS:
            continue
        before = masked[:vs]
        after = masked[ve:]
        if _noun_use(verb, after):
            continue
        # form 2: ', said X.' / '," said X, who ...'
        m_before = re.search(r"[,\"\u201d" + MASK + r"]\s*$", before)
        if verb in ("told", "tells"):
            m_before = None  # "..., Samir Haddad, told journalists": what follows is the audience
        if m_before and _reported_before(before[: m_before.start()] + MASK * (MASK in before)):
            tail = re.match(r"\s+([^" + MASK + r"]+?)\s*[.!?]?[\"\u201d]?\s*$", after)
            if tail:
                np = _clean_after_verb(tail.group(1))
                head_part = tail.group(1).split(",")[0]
                if _valid_np(np) and _looks_like_speaker(np) and not _has_clause_verb(head_part):
                    return _Own(np, verb, "trailing")
        # form 1: ', X said <adverbials>.' or ', X said, ...'
        seg_start = max(before.rfind(","), before.rfind(MASK), before.rfind("\u201d"), before.rfind('"'))
        if seg_start < 0 or not _reported_before(before[:seg_start] + before[seg_start]):
            continue
        m_after = re.match(r"([^,.;!?" + MASK + r"]*)([,.;!?]|$)", after)
        if not m_after:
            continue
        tail_words = m_after.group(1).split()
        if len(tail_words) > 8 or "that" in [w.lower() for w in tail_words]:
            continue
        if tail_words and (tail_words[0][:1].isdigit() or tail_words[0].lower() in _NUMBER_WORDS):
            continue  # "an estimated 45,000": the verb has a numeric object, it is not an attribution
        prev = _prev_words(masked, vs, 2)
        if prev and (prev[-1] in NEGATIONS or prev[-1] in MODALS or prev[-1] in AUXILIARIES or prev[-1] in DETERMINERS):
            continue
        subject = _np_before(masked, vs)
        if subject is not None and _valid_np(subject) and len(subject.split()) <= 14:
            best = _Own(subject, verb, "trailing")
    return best


def _leading(masked: str) -> _Own | None:
    for vs, ve, verb in _verb_positions(masked):
        prev = _prev_words(masked, vs, 3)
        rest = masked[ve:]
        if prev:
            p1 = prev[-1]
            if p1 in DETERMINERS and verb not in ("said",):
                continue
            if p1 in MODALS or p1 in NEGATIONS:
                continue
            # skip adverbs to find an auxiliary: "was widely reported", "has not said"
            k = len(prev) - 1
            while k > 0 and (prev[k].endswith("ly") or prev[k] in ("also", "not", "never")):
                k -= 1
            if prev[k] in AUXILIARIES or prev[k] in NEGATIONS or "not" in prev[k:] or "never" in prev[k:]:
                continue
        elif verb in AMBIGUOUS_FORMS:
            continue
        if verb in ("put", "puts") and not _TOLL_OBJECT.match(rest):
            continue
        if _noun_use(verb, rest):
            continue
        if re.match(r"\s+(?:little|nothing|almost\s+nothing|very\s+little)\b", rest, re.I):
            continue  # "has said little publicly"
        if verb.endswith("ing") and re.search(r",\s*$", masked[:vs]):
            # "..., saying ...", "..., claiming without evidence ...": the sentence's subject speaks
            subject = _sentence_subject(masked)
            if subject and _valid_np(subject):
                return _Own(subject, verb, "leading")
            continue
        np = _np_before(masked, vs)
        if np is None and re.search(r",?\s*\b(?:and|but)\s+(?:also\s+)?$", masked[:vs]):
            np = _sentence_subject(masked)  # "The agency appealed for money, but says ..."
        if not _valid_np(np):
            continue
        assert np is not None
        if verb in SHOW_VERBS and not _has_agent(np):
            continue
        return _Own(np, verb, "leading")
    # "The agency has raised the confirmed death toll to 312"
    m = _REVISED_TOLL.search(masked)
    if m:
        np = _np_before(masked, m.start())
        if _valid_np(np) and np is not None:
            return _Own(np, m.group(1).lower(), "leading")
    return None


def own_attribution(masked: str) -> _Own | None:
    # "(ANU)" and similar acronyms in brackets only get in the way of finding the subject
    masked = re.sub(r"\s\([A-Z][A-Za-z]{1,7}\)", lambda m: " " * len(m.group()), masked)
    m = _ACCORDING.search(masked)
    if m:
        np = _strip_np(m.group("np"))
        np = re.split(r"\s+(?:which|who|that)\s", np)[0]
        by = re.search(r"\b(?:by|from)\s+(.+)$", np)
        if by and re.search(
            r"\b(?:published|released|compiled|obtained|issued|collected|seen|gathered|"
            r"provided|figures|data|results)\b",
            np[: by.start()],
        ):
            np = by.group(1)
        if _valid_np(np):
            return _Own(np, "according to", "according")
    trailing = _trailing(masked)
    if trailing:
        return trailing
    leading = _leading(masked)
    if leading:
        return leading
    m = _PASSIVE_BY.search(masked)
    if m and _valid_np(_strip_np(m.group("np"))):
        return _Own(_strip_np(m.group("np")), "by", "passive")
    m = _CITING.search(masked)
    if m and _valid_np(_strip_np(m.group("np"))):
        return _Own(_strip_np(m.group("np")), "citing", "citing")
    return None


# -------------------------------------------------------------------------------------- resolution
def _kind_of(name: str) -> str:
    words = [w.strip(",.").lower() for w in name.split()]
    if not words:
        return "org"
    if any(w in ORG_HEADS or w in COMPANY_SUFFIXES for w in words[-2:]) and not any(
        w in PERSON_ROLES for w in words[:1]
    ):
        return "org"
    pre = []
    for w in words:
        if w in ("in", "of", "for", "from", "at", "with", "on"):
            break
        pre.append(w)
    head = pre[-1] if pre else words[-1]
    if head.endswith("s") and (head in PERSON_ROLES or head[:-1] in PERSON_ROLES) and not _NAME.search(name):
        return "group"  # "officials", "residents": not a "he" or "she"
    if any(w in PERSON_TITLES or w in PERSON_ROLES for w in words):
        return "person"
    if _NAME.search(name):
        return "person"
    if words[-1].endswith("s"):
        return "group"
    return "org"


def _collect_mentions(state: _State, sentence: Sentence, masked: str) -> None:
    """Remember people and organisations named in a sentence (outside quotes)."""
    for m in re.finditer(
        r"(?:\b(?:[A-Z][a-z]+|[a-z]+)\s+)?(?:(?:Mr|Mrs|Ms|Dr|Prof|Gen|Col|Capt|Gov|Sen|Rev)\.\s+)?"
        r"[A-Z][a-z]+(?:[-'\u2019][A-Z]?[a-z]+)?(?:\s+(?:of\s+)?[A-Z][a-z]+(?:[-'\u2019][A-Z]?[a-z]+)?)+",
        masked,
    ):
        span = m.group(0)
        words = span.split()
        lead = words[0].lower().rstrip(".")
        pos = sentence.start + m.start()
        last = words[-1].lower()
        if last in ORG_HEADS or last in COMPANY_SUFFIXES:
            name = " ".join(w for w in words if w[:1].isupper() or w == "of")
            if name.split()[0] in ("The", "A", "An"):
                name = " ".join(name.split()[1:])
            state.mentions.append(_Mention(pos, name, "org"))
        elif lead in (PERSON_TITLES | PERSON_ROLES) or (m.start() > 1 and _ROLE_BEFORE.search(masked[: m.start()])):
            state.mentions.append(_Mention(pos, span, "person"))
    # a bare surname at the start of a sentence ("Whitlock thanked ...") that we already know
    m0 = re.match(r"\W*([A-Z][a-z]+)\b", masked)
    if m0:
        word = m0.group(1)
        recent = state.mentions[-_MEMORY:] + [_Mention(p, n, k) for p, n, k in state.claimants[-_MEMORY:]]
        for prev in reversed(recent):
            if prev.kind == "person" and word in prev.name.split():
                state.mentions.append(_Mention(sentence.start, prev.name, "person"))
                break


def _resolve(np: str, state: _State, sentence: Sentence, masked: str, at_start: bool) -> str | None:
    found_at = masked.find(np)
    limit = sentence.start + (found_at if found_at >= 0 else 0)
    words = np.split()
    low = np.lower()
    if low in PRONOUNS:
        kind = PRONOUNS[low]
        if kind == "self":
            return None
        if not at_start and kind in ("org", "any"):
            subject = _sentence_subject(masked)
            if subject and subject.lower() not in PRONOUNS:
                return _resolve(subject, state, sentence, masked, True) or subject
        pool: list[tuple[int, str, str]] = [(c[0], c[1], c[2]) for c in state.claimants[-_MEMORY:]]
        pool += [(m.position, m.name, m.kind) for m in state.mentions[-_MEMORY:] if m.position < limit]
        pool.sort(key=lambda x: x[0])
        for _, name, k in reversed(pool):
            if kind == "person" and k == "person":
                return name
            if kind == "org" and k in ("org", "group"):
                return name
            if kind == "any":
                return name
        return None
    # a bare surname, possibly with a title: "Marsh", "Dr. Nwosu"
    bare = [w for w in words if w.lower().rstrip(".") not in PERSON_TITLES]
    if len(bare) == 1 and bare[0][:1].isupper():
        for _, name, _k in reversed(state.claimants):
            if bare[0] in name.replace(",", " ").split():
                return name
        for m in reversed(state.mentions):
            if m.kind == "person" and bare[0] in m.name.split():
                return m.name
        return np
    # generic organisational reference: "the ministry", "the electoral office", "the firm"
    if (
        words
        and words[0].lower() in ("the", "this", "that")
        and not any(w[:1].isupper() and "." not in w and "-" not in w for w in words[1:])
    ):
        content = [w.lower().strip(",.'\u2019") for w in words[1:]]
        head = content[-1] if content else ""
        if head in ORG_HEADS or head in COMPANY_HEADS:
            for _, name, _k in reversed(state.claimants):
                lname = name.lower()
                if all(c in lname for c in content if "-" not in c and "." not in c) and lname != low:
                    return name
            for m in reversed(state.mentions):
                if m.kind != "org" or m.position >= limit:
                    continue
                lname = m.name.lower()
                if head in lname.split() or (head in COMPANY_HEADS and lname.split()[-1] in COMPANY_SUFFIXES):
                    return m.name
    return np


def _sentence_subject(masked: str) -> str | None:
    """The noun phrase that opens a sentence, up to its first comma or verb."""
    s = masked.strip(" " + MASK + _QUOTE_CHARS)
    words: list[str] = []
    for w in s.split():
        lw = w.lower().strip(",.")
        if lw in CLAUSE_VERBS or lw in SPEECH_VERBS or (lw.endswith(("ed",)) and words):
            break
        words.append(w)
        if w.endswith(","):
            break
    np = _strip_np(" ".join(words))
    return np or None


# ----------------------------------------------------------------------------------------- driver
def attribute_sentences(
    text: str, sentences: Sequence[Sentence], hedged: Sequence[bool] | None = None
) -> list[Attribution]:
    masks, flags = quote_masks(text, sentences)
    state = _State(text)
    own: list[_Own | None] = []
    resolved: list[str | None] = []
    for i, s in enumerate(sentences):
        masked = masks[i]
        _collect_mentions(state, s, masked)
        o = own_attribution(masked)
        name: str | None = None
        if o is not None:
            at_start = masked.lstrip(" " + MASK + _QUOTE_CHARS).lower().startswith(o.np.lower())
            if o.verb in SHOW_VERBS or o.kind == "leading":
                o.np = _possessor(o.np)
            name = _resolve(o.np, state, s, masked, at_start)
            if name is not None:
                state.claimants.append((s.start, name, _kind_of(name)))
        own.append(o)
        resolved.append(name)

    out: list[Attribution] = []
    # quotation groups spanning several sentences
    group_of = list(range(len(sentences)))
    for i in range(1, len(sentences)):
        if flags[i - 1][1] and flags[i][0] and sentences[i - 1].paragraph == sentences[i].paragraph:
            group_of[i] = group_of[i - 1]
    group_claimant: dict[int, tuple[str, str | None]] = {}
    for i, name in enumerate(resolved):
        if name is not None and group_of[i] not in group_claimant:
            has_quote = MASK in masks[i] or flags[i][0]
            own_i = own[i]
            if has_quote:
                group_claimant[group_of[i]] = (name, own_i.verb if own_i is not None else None)
    prev: Attribution | None = None
    for i, s in enumerate(sentences):
        has_quote = MASK in masks[i]
        o = own[i]
        name = resolved[i]
        if name is not None:
            att = Attribution(name, "sentence", o.verb if o else None, has_quote)
        elif group_of[i] in group_claimant and (flags[i][0] or flags[i][1] or has_quote):
            gname, gverb = group_claimant[group_of[i]]
            att = Attribution(gname, "quote", gverb, True)
        elif (
            flags[i][2]
            and prev is not None
            and prev.claimant
            and i > 0
            and (sentences[i - 1].paragraph >= s.paragraph - 1)
        ):
            att = Attribution(prev.claimant, "carried", prev.verb, True)
        elif (
            hedged is not None and hedged[i] and prev is not None and prev.claimant and ANAPHORIC_HEDGE.search(masks[i])
        ):
            att = Attribution(prev.claimant, "carried", prev.verb, False)
        else:
            att = Attribution(None, "none", None, has_quote)
        out.append(att)
        prev = att
    return out
