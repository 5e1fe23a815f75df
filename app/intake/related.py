"""Finding claims related to a claim: likely duplicates and figures about the same thing.

Nothing here scans the claims table. Two narrowing steps find a bounded set of candidates, and only
those are scored in Python with ``similarity`` / ``same_quantity``:

* the term index (``claim_terms``): each claim's distinctive words, normalised and hashed; up to
  ``MAX_TERMS`` per claim, chosen as the smallest hashes so that two similar texts keep mostly the
  same ones. A lookup reads at most ``per_term`` newest claims per term: a rare word (a place, a
  name) finds every claim that has it, a common one only the recent ones. This is what runs when a
  claim is created, so its cost does not grow with the desk.
* the full-text index (SQLite FTS5 trigram table ``claims_fts``, PostgreSQL ``claims.search``), for
  the related view only: it matches word fragments and inflections the term index misses, and
  reaches claims created before the term index existed.

The related view also compares the newest claims, whatever they say, and every claim recorded as a
suspected duplicate when this one was created.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.claims.models import Claim
from app.intake._util import wordset
from app.intake.models import ClaimTerm
from app.intake.numbers import find_figures
from app.intake.similarity import DUPLICATE_THRESHOLD, _dense_script, _ngrams, normalise, same_quantity

MAX_TERMS = 8
# At creation: at most 25 claims read per term, at most 5 scored.
CREATE_PER_TERM = 25
CREATE_SCORED = 5
# On the related view: more of each, plus full-text matches among the last 200,000 claims and the
# newest claims whatever they say (texts in scripts that split badly into words).
READ_PER_TERM = 200
READ_SCORED = 80
READ_WINDOW = 200_000
READ_FULL_TEXT = 60
READ_RECENT = 30
SHARED_SHARE = 0.5  # of a claim's terms another must share to be compared at all
MAX_DUPLICATES = 20
MAX_FIGURES = 20

# Too common to tell claims apart; they never become terms or search words.
_COMMON = wordset(
    """the and for was were are has had have not but its his her their they them this that these those
    with from into onto over under than then there here been being which who whom whose what when where
    while will would could should said says told also more most some such only very just about after
    before since until because other others our out all any each both one two three new
    les des est une dans pour par qui que sur avec die der und das den ein eine mit von los las del por
    con para"""
)
_WORD = re.compile(r"[^\W_]+")
_TERMS: sa.Table = ClaimTerm.__table__  # type: ignore[attr-defined]
_CLAIMS: sa.Table = Claim.__table__  # type: ignore[attr-defined]
# Built once: the candidates' texts at creation, read as plain rows (no ORM entities).
_CANDIDATE_TEXTS = sa.select(_CLAIMS.c.id, _CLAIMS.c.text).where(_CLAIMS.c.id.in_(sa.bindparam("ids", expanding=True)))


def _dense(ch: str) -> bool:
    cp = ord(ch)
    return 0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF


def _stem(word: str) -> str:
    """A crude English suffix strip so "flooded", "floods" and "flood" meet; other scripts untouched."""
    if not word.isascii() or len(word) <= 4:
        return word
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def terms_of(text: str) -> list[str]:
    """The words that can tell this claim apart: normalised (so "forty" and "40" meet), stemmed, with
    common words dropped; runs of Han, kana or Hangul become overlapping character pairs."""
    out: set[str] = set()
    for word in normalise(text).split():
        if any(_dense(ch) for ch in word):
            out.update(word[i : i + 2] for i in range(max(1, len(word) - 1)))
        elif word.replace(".", "").isdigit():
            if len(word) >= 2 and word.strip("0."):
                out.add(word)
        elif len(word) >= 3 and word not in _COMMON:
            out.add(_stem(word))
    return sorted(out)


def term_hashes(text: str) -> list[int]:
    """At most MAX_TERMS hashes (signed 64-bit), the smallest: a bottom-k sketch of the term set."""
    return list(_term_hashes(text))


@functools.lru_cache(maxsize=256)
def _term_hashes(text: str) -> tuple[int, ...]:
    hashes = {
        int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big", signed=True) for t in terms_of(text)
    }
    return tuple(sorted(hashes)[:MAX_TERMS])


# Scoring a new claim compares it with a few recent claims that share its terms, and the same recent
# claims come up again and again: their prepared texts are kept instead of being normalised and cut
# into n-grams inside every write transaction. An entry is about 10-20 KiB for a claim of 150-250
# characters (about 77 KiB for 1,000), so 256 entries stay within a few MiB. Keyed by the text
# itself, so an edited claim is simply a new entry.
@functools.lru_cache(maxsize=256)
def profile_of(text: str) -> Profile:
    return Profile(text)


def prepare(text: str) -> None:
    """Do a new text's CPU work (terms, profile) before the write transaction that registers it, so
    SQLite's write lock is not held for it; :func:`register_claim` then finds both ready."""
    _term_hashes(text)
    profile = profile_of(text)
    profile.grams(2 if profile.dense else 3)


def index_claim(
    session: Session, claim: Claim | sa.Row[Any], hashes: list[int] | None = None, *, new: bool = False
) -> None:
    """(Re)write the claim's terms; call after its text changes."""
    assert claim.id is not None
    if not new:
        session.execute(sa.delete(ClaimTerm).where(col(ClaimTerm.claim_id) == claim.id))
    hashes = term_hashes(claim.text) if hashes is None else hashes
    if hashes:
        # Core, not the ORM's bulk path: this runs for every new claim.
        session.connection().execute(_TERMS.insert(), [{"term": h, "claim_id": claim.id} for h in hashes])


_SHARING_ARM = (
    "SELECT claim_id FROM (SELECT claim_id FROM claim_terms WHERE term = :t{i} AND claim_id <> :me "
    "ORDER BY claim_id DESC LIMIT :k) AS t{i}"
)


@functools.cache
def _sharing_sql(n: int) -> sa.TextClause:
    return sa.text(" UNION ALL ".join(_SHARING_ARM.format(i=i) for i in range(n)))


def _sharing(session: Session, hashes: list[int], *, exclude: int, per_term: int) -> Counter[int]:
    """How many of ``hashes`` each claim shares, reading at most ``per_term`` claims per term."""
    if not hashes:
        return Counter()
    # One round trip; each arm is a bounded range read of the (term, claim_id) primary key. Plain
    # SQL because building and caching this statement through the expression layer costs more than
    # running it.
    sql = _sharing_sql(len(hashes))
    params: dict[str, int] = {f"t{i}": h for i, h in enumerate(hashes)}
    params.update(me=exclude, k=per_term)
    return Counter(int(cid) for (cid,) in session.connection().execute(sql, params))


def _need(n_terms: int, share: float) -> int:
    """Texts at DUPLICATE_THRESHOLD share well over half their terms (measured on rewordings of the
    labelled articles' sentences, none below); half is the floor."""
    return min(n_terms, max(2, math.ceil(n_terms * share)))


def _best_sharing(shared: Counter[int], n_terms: int, limit: int, share: float = SHARED_SHARE) -> list[int]:
    """Claims sharing enough terms to be worth scoring, most shared first, then newest."""
    need = _need(n_terms, share)
    ranked = sorted((cid for cid, n in shared.items() if n >= need), key=lambda cid: (-shared[cid], -cid))
    return ranked[:limit]


@functools.cache
def _best_sharing_sql(n: int) -> sa.TextClause:
    # The arms are a constant template with numbered placeholders; every value is a bound parameter.
    return sa.text(
        f"SELECT claim_id FROM ({_sharing_sql(n).text}) AS shared "  # noqa: S608
        "GROUP BY claim_id HAVING count(*) >= :need ORDER BY count(*) DESC, claim_id DESC LIMIT :best"
    )


def _best_sharing_in_db(session: Session, hashes: list[int], *, exclude: int, per_term: int, limit: int) -> list[int]:
    """:func:`_best_sharing` over :func:`_sharing`, counted and ranked by the database: on every new
    claim this returns a handful of ids instead of up to ``per_term`` rows for each of its terms."""
    if not hashes:
        return []
    params: dict[str, int] = {f"t{i}": h for i, h in enumerate(hashes)}
    params.update(me=exclude, k=per_term, need=_need(len(hashes), SHARED_SHARE), best=limit)
    return [int(cid) for (cid,) in session.connection().execute(_best_sharing_sql(len(hashes)), params)]


# --- scoring ---------------------------------------------------------------------------------


@dataclass
class Profile:
    """A text prepared once for many comparisons; ``score`` equals ``similarity.similarity``."""

    text: str
    norm: str = ""
    dense: bool = False
    _grams: dict[int, tuple[Counter[str], float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.norm = normalise(self.text)
        self.dense = _dense_script(self.norm)

    def grams(self, n: int) -> tuple[Counter[str], float]:
        if n not in self._grams:
            counts = _ngrams(self.norm, n)
            self._grams[n] = (counts, math.sqrt(sum(v * v for v in counts.values())))
        return self._grams[n]

    def score(self, other: Profile) -> float:
        if not self.norm and not other.norm:
            return 1.0
        if not self.norm or not other.norm:
            return 0.0
        if self.norm == other.norm:
            return 1.0
        n = 2 if self.dense or other.dense else 3
        (ca, na), (cb, nb) = self.grams(n), other.grams(n)
        if len(cb) < len(ca):
            ca, cb = cb, ca
        dot = sum(v * cb[k] for k, v in ca.items() if k in cb)
        return max(0.0, min(1.0, dot / (na * nb))) if na and nb else 0.0


@dataclass(frozen=True)
class Match:
    claim: Claim
    score: float


def _load(session: Session, ids: Iterable[int]) -> list[Claim]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = {c.id: c for c in session.execute(sa.select(Claim).where(col(Claim.id).in_(wanted))).scalars()}
    return [found[i] for i in wanted if i in found]


def _score_duplicates(claim: Claim, others: list[Claim], keep: Collection[int] = ()) -> list[Match]:
    mine = profile_of(claim.text)
    out = []
    for other in others:
        if other.id == claim.id:
            continue
        score = round(mine.score(profile_of(other.text)), 3)
        if score >= DUPLICATE_THRESHOLD or other.id in keep:
            out.append(Match(other, score))
    out.sort(key=lambda m: (-m.score, -(m.claim.id or 0)))
    return out[:MAX_DUPLICATES]


@dataclass(frozen=True)
class SuspectedDuplicate:
    claim_id: int
    score: float


def register_claim(session: Session, claim: Claim | sa.Row[Any]) -> list[SuspectedDuplicate]:
    """For a claim just created: the claims it likely duplicates (best first), then its own terms
    added to the index. A handful of index reads and at most CREATE_SCORED comparisons; the
    candidates' texts are the only thing read from the claims table."""
    assert claim.id is not None
    hashes = term_hashes(claim.text)
    ids = _best_sharing_in_db(session, hashes, exclude=claim.id, per_term=CREATE_PER_TERM, limit=CREATE_SCORED)
    duplicates: list[tuple[int, float]] = []
    if ids:
        mine = profile_of(claim.text)
        for cid, text in session.connection().execute(_CANDIDATE_TEXTS, {"ids": ids}):
            score = round(mine.score(profile_of(text)), 3)
            if score >= DUPLICATE_THRESHOLD and cid is not None:
                duplicates.append((cid, score))
    index_claim(session, claim, hashes, new=True)
    duplicates.sort(key=lambda d: (-d[1], -d[0]))
    return [SuspectedDuplicate(cid, score) for cid, score in duplicates]


# --- the related view ------------------------------------------------------------------------


def search_words(text: str, limit: int = 8) -> list[str]:
    """The longest distinct words of ``text`` for a full-text query (length stands in for rarity).
    Runs of a script written without spaces are cut into four-character pieces."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.casefold()):
        pieces = [word] if len(word) <= 12 else [word[i : i + 4] for i in range(0, len(word) - 2, 4)]
        for piece in pieces:
            if len(piece) >= 3 and piece not in _COMMON and not (piece.isdigit() and not piece.strip("0")):
                seen.setdefault(piece, None)
    return sorted(seen, key=len, reverse=True)[:limit]


def _full_text_ids(session: Session, claim: Claim, *, window: int, limit: int) -> list[int]:
    """The newest claims among the last ``window`` whose text has any of the claim's longest words.
    No relevance ranking: bm25 over trigram phrases costs a pass over the whole index."""
    words = search_words(claim.text)
    if not words:
        return []
    newest = session.execute(sa.select(sa.func.max(col(Claim.id)))).scalar_one() or 0
    params = {"floor": max(0, newest - window), "me": claim.id or 0, "k": limit}
    if session.get_bind().dialect.name == "postgresql":
        # Prefix matches ("flood" finds "flooded"); the words are letters and digits only, so they
        # cannot carry tsquery operators.
        query = " | ".join(f"{w}:*" for w in words)
        sql = (
            "SELECT id FROM claims WHERE search @@ to_tsquery('simple', :q) AND id > :floor AND id <> :me "
            "ORDER BY id DESC LIMIT :k"
        )
    else:
        # The trigram tokenizer matches substrings of three characters or more, in any script.
        query = "text : (" + " OR ".join('"' + w.replace('"', '""') + '"' for w in words) + ")"
        sql = (
            "SELECT rowid FROM claims_fts WHERE claims_fts MATCH :q AND rowid > :floor AND rowid <> :me "
            "ORDER BY rowid DESC LIMIT :k"
        )
    return [int(r[0]) for r in session.execute(sa.text(sql), {"q": query, **params})]


def _recent_ids(session: Session, claim: Claim, limit: int) -> list[int]:
    stmt = sa.select(col(Claim.id)).where(col(Claim.id) != (claim.id or 0)).order_by(col(Claim.id).desc())
    return [i for i in session.execute(stmt.limit(limit)).scalars() if i is not None]


@dataclass(frozen=True)
class FigureMatch:
    claim: Claim
    figure: dict[str, Any]
    reason: str


def figures_of(claim: Claim) -> list[dict[str, Any]]:
    """The claim's stated figure, or else the figures the extractor reads in its text (English)."""
    if claim.figure:
        return [claim.figure]
    if claim.language and not claim.language.lower().startswith("en"):
        return []
    return [
        {"low": f.low, "high": f.high, "qualifier": f.qualifier, "counted": f.counted, "unit": f.unit}
        for f in find_figures(claim.text)
        if not f.is_duration
    ]


def _same_claimant(a: str | None, b: str | None) -> bool:
    return bool(a and b and " ".join(a.casefold().split()) == " ".join(b.casefold().split()))


def _figure_matches(claim: Claim, others: list[Claim]) -> list[FigureMatch]:
    mine = figures_of(claim)
    if not mine:
        return []
    out: list[FigureMatch] = []
    for other in others:
        if other.id == claim.id or _same_claimant(claim.claimant, other.claimant):
            continue
        match = None
        for fa in mine:
            for fb in figures_of(other):
                reason = same_quantity(
                    fa, fb, claim.text, other.text, claimant_a=claim.claimant, claimant_b=other.claimant
                )
                if reason:
                    match = FigureMatch(other, fb, reason)
                    break
            if match:
                break
        if match:
            out.append(match)
            if len(out) >= MAX_FIGURES:
                break
    return out


@dataclass(frozen=True)
class Related:
    duplicates: list[Match]
    figures: list[FigureMatch]


def related_to(session: Session, claim: Claim, *, flagged: Collection[int]) -> Related:
    """Duplicates and figures for the related view. ``flagged`` are the claims recorded as suspected
    duplicates when ``claim`` was created; they stay listed even if since edited apart."""
    assert claim.id is not None
    hashes = term_hashes(claim.text)
    shared = _sharing(session, hashes, exclude=claim.id, per_term=READ_PER_TERM)
    ids = [
        # Looser than at creation: figures about one event share a few words (the place, the event).
        *_best_sharing(shared, len(hashes), READ_SCORED, share=0.0),
        *_full_text_ids(session, claim, window=READ_WINDOW, limit=READ_FULL_TEXT),
        *_recent_ids(session, claim, READ_RECENT),
        *sorted(flagged),
    ]
    others = _load(session, ids)
    return Related(_score_duplicates(claim, others, flagged), _figure_matches(claim, others))
