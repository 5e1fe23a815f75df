"""Intake: store a pasted article with its extracted candidates, turn a candidate into a claim, and
show or link related claims.

Services take the session first and keyword arguments after, flush but never commit, and raise
DomainError subclasses. Extraction runs before the first statement, so a long article never holds
the write transaction (SQLite's write lock) while it is being read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from app.audit import service as audit
from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims.models import Claim
from app.claims.schemas import ClaimCreate, ClaimFigure
from app.clock import clock
from app.config import Settings
from app.db import lock_for_update
from app.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from app.intake import related
from app.intake.extract import extract_candidates
from app.intake.models import Article, ArticleCandidate, ClaimLink
from app.intake.schemas import MAX_ARTICLE_CHARS, AcceptIn, ArticleIn, text_problem
from app.intake.segment import split_sentences

CONTEXT_REACH = 1500  # characters either side of a candidate searched for its neighbouring sentences
CONTEXT_SENTENCE_MAX = 600  # a neighbouring sentence longer than this is cut at a word boundary


def subject(article_id: int) -> str:
    return f"article:{article_id}"


# --- articles --------------------------------------------------------------------------------


def create_article(session: Session, *, principal: Principal, data: ArticleIn) -> tuple[Article, list[dict[str, Any]]]:
    """Store the article and its candidates in the caller's transaction. Returns the article and the
    candidates (``Candidate.to_dict()`` plus ``accepted_claim_id``)."""
    if len(data.text) > MAX_ARTICLE_CHARS:
        raise PayloadTooLarge(
            f"The article has {len(data.text):,} characters; the limit is {MAX_ARTICLE_CHARS:,}. Split it into parts.",
            max_chars=MAX_ARTICLE_CHARS,
        )
    problem = text_problem(data.text)
    if problem:
        raise Unprocessable(
            f"The article is not text: it {problem}.",
            errors=[{"loc": ["body", "text"], "msg": f"not text: {problem}", "type": "not_text"}],
        )
    result = extract_candidates(data.text, language=data.language, published_at=data.published_at)
    note = result.note
    if note is None and not result.candidates:
        note = f"no check-worthy sentences found among {result.sentences} read"
    now = clock.now()
    article = Article(
        text=data.text,
        url=data.url,
        outlet=data.outlet,
        published_at=data.published_at,
        language=data.language or result.language,
        note=note,
        sentences=result.sentences,
        submitted_by=principal.user_id,
        created_at=now,
    )
    session.add(article)
    session.flush()
    assert article.id is not None
    candidates = [c.to_dict() for c in result.candidates]
    if candidates:
        session.execute(
            sa.insert(ArticleCandidate),
            [
                {"article_id": article.id, "index": c["index"], "start": c["start"], "end": c["end"], "data": c}
                for c in candidates
            ],
        )
    audit.record(
        session,
        type_="article.created",
        actor=principal.actor,
        subject=subject(article.id),
        data={
            "url": article.url,
            "outlet": article.outlet,
            "language": article.language,
            "characters": len(article.text),
            "candidates": len(candidates),
        },
        emit=False,
        at=now,
    )
    return article, [{**c, "accepted_claim_id": None} for c in candidates]


def _may_see(article: Article, principal: Principal) -> bool:
    return principal.has(Role.editor) or article.submitted_by == principal.user_id


def get_article(session: Session, *, principal: Principal, article_id: int) -> Article:
    """The article, if the caller may see it: editors see every article, others their own. Anything
    else is a 404, so ids of other people's articles reveal nothing."""
    article = session.get(Article, article_id)
    if article is None or not _may_see(article, principal):
        raise NotFound(f"No article with id {article_id}.")
    return article


def candidates_of(session: Session, article_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(col(ArticleCandidate.data), col(ArticleCandidate.accepted_claim_id))
        .where(col(ArticleCandidate.article_id) == article_id)
        .order_by(col(ArticleCandidate.index))
    )
    return [{**data, "accepted_claim_id": accepted} for data, accepted in rows]


@dataclass
class ArticleCounts:
    article: Article
    candidates: int
    accepted: int


def list_articles(session: Session, *, principal: Principal, before_id: int | None, limit: int) -> list[ArticleCounts]:
    """Newest first, keyset-paged by id; only the caller's own unless they are an editor."""
    stmt = sa.select(Article).order_by(col(Article.id).desc()).limit(limit + 1)
    if not principal.has(Role.editor):
        stmt = stmt.where(col(Article.submitted_by) == principal.user_id)
    if before_id is not None:
        stmt = stmt.where(col(Article.id) < before_id)
    articles = list(session.execute(stmt).scalars())
    counts: dict[int, tuple[int, int]] = {}
    ids = [a.id for a in articles]
    if ids:
        for article_id, total, accepted in session.execute(
            sa.select(
                col(ArticleCandidate.article_id),
                sa.func.count(),
                sa.func.count(col(ArticleCandidate.accepted_claim_id)),
            )
            .where(col(ArticleCandidate.article_id).in_(ids))
            .group_by(col(ArticleCandidate.article_id))
        ):
            counts[article_id] = (int(total), int(accepted))
    out = []
    for a in articles:
        assert a.id is not None
        total, accepted = counts.get(a.id, (0, 0))
        out.append(ArticleCounts(a, total, accepted))
    return out


# --- accepting a candidate -------------------------------------------------------------------


def _context(text: str, start: int, end: int) -> str:
    """The candidate's sentence with the sentences either side (news copy often gives each sentence
    its own paragraph, so paragraphs are kept apart by a line break, not skipped)."""
    lo, hi = max(0, start - CONTEXT_REACH), min(len(text), end + CONTEXT_REACH)
    sentences = split_sentences(text[lo:hi])
    mine = next((i for i, s in enumerate(sentences) if s.start <= start - lo < s.end), None)
    if mine is None:
        return text[start:end]
    out = ""
    for i in (mine - 1, mine, mine + 1):
        if not 0 <= i < len(sentences):
            continue
        s = sentences[i].text
        if i < mine and len(s) > CONTEXT_SENTENCE_MAX:
            tail = s[-CONTEXT_SENTENCE_MAX:]
            s = "\u2026" + (tail.split(" ", 1)[1] if " " in tail else tail)
        elif i > mine and len(s) > CONTEXT_SENTENCE_MAX:
            s = s[:CONTEXT_SENTENCE_MAX].rsplit(" ", 1)[0] + "\u2026"
        if out:
            out += " " if sentences[i].paragraph == sentences[i - 1].paragraph else "\n"
        out += s
    return out


def _figure(candidate: dict[str, Any], article: Article) -> dict[str, Any] | None:
    for f in candidate.get("figures") or []:
        if f.get("low") is None and f.get("high") is None:
            continue
        counted = (f.get("counted") or None) and str(f["counted"])[:200]
        unit = (f.get("unit") or None) and str(f["unit"])[:32]
        figure = {
            "low": f.get("low"),
            "high": f.get("high"),
            "qualifier": f.get("qualifier"),
            "counted": counted,
            "unit": unit,
            "as_of": article.published_at.date().isoformat() if article.published_at else None,
        }
        try:
            return ClaimFigure.model_validate(figure).model_dump(mode="json")
        except ValidationError:
            continue  # an odd parse is left out rather than blocking the claim
    return None


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def accept_candidate(
    session: Session,
    *,
    principal: Principal,
    article_id: int,
    index: int,
    adjust: AcceptIn | None,
    settings: Settings,
) -> sa.Row[Any]:
    """Create the claim a candidate proposes (returned as its row). Editors accept from any article, others from their
    own. Once only: the candidate row is locked (PostgreSQL; SQLite serialises writers), and the
    conditional update below would refuse a second acceptance anyway."""
    article = get_article(session, principal=principal, article_id=article_id)
    stmt = sa.select(ArticleCandidate).where(
        col(ArticleCandidate.article_id) == article_id, col(ArticleCandidate.index) == index
    )
    row = session.execute(
        lock_for_update(stmt, session.get_bind().dialect.name).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Article {article_id} has no candidate {index}.")
    if row.accepted_claim_id is not None:
        raise Conflict(
            f"Candidate {index} of article {article_id} was already accepted as claim {row.accepted_claim_id}.",
            claim_id=row.accepted_claim_id,
        )
    candidate = row.data
    adjust = adjust or AcceptIn()
    raw: dict[str, Any] = {
        "text": adjust.text or candidate["text"],
        "claimant": adjust.claimant or candidate.get("claimant") or None,
        "appearance_url": article.url,
        "appeared_at": article.published_at,
        "outlet": article.outlet,
        "context": _context(article.text, row.start, row.end),
        "language": article.language,
        "tags": adjust.tags,
        "figure": _figure(candidate, article),
    }
    if adjust.priority is not None:
        raw["priority"] = adjust.priority
    if raw["claimant"] and len(raw["claimant"]) > 300:
        raw["claimant"] = raw["claimant"][:300]
    try:
        data = ClaimCreate.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable(
            "The candidate does not make a valid claim as it stands (a sentence over 1,000 characters?); "
            "send an adjusted `text`.",
            errors=_validation_errors(exc),
        ) from exc
    source = {"article_id": article_id, "start": row.start, "end": row.end}
    claim = claims_service.create_claim(session, principal=principal, data=data, settings=settings, source=source)
    now = clock.now()
    taken = session.execute(
        sa.update(ArticleCandidate)
        .where(col(ArticleCandidate.id) == row.id, col(ArticleCandidate.accepted_claim_id).is_(None))
        .values(accepted_claim_id=claim.id, accepted_by=principal.user_id, accepted_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(taken, "rowcount", 1) != 1:
        raise Conflict(f"Candidate {index} of article {article_id} was accepted meanwhile.")
    audit.record(
        session,
        type_="article.candidate_accepted",
        actor=principal.actor,
        subject=subject(article_id),
        data={"index": index, "claim_id": claim.id},
        emit=False,
        at=now,
    )
    return claim


# --- related claims --------------------------------------------------------------------------


@dataclass
class Linked:
    claim: Claim
    reason: str | None
    linked_by: int | None
    linked_at: Any


@dataclass
class RelatedView:
    claim: Claim
    related: related.Related
    linked: list[Linked]
    flagged: set[int]


def _flagged(session: Session, claim_id: int) -> set[int]:
    """Claims named in this claim's ``claim.duplicate_suspected`` events."""
    rows = session.execute(
        sa.select(col(AuditEvent.data)).where(
            col(AuditEvent.claim_id) == claim_id, col(AuditEvent.type) == "claim.duplicate_suspected"
        )
    ).scalars()
    out: set[int] = set()
    for data in rows:
        for item in (data or {}).get("duplicates", []):
            if isinstance(item, dict) and isinstance(item.get("claim_id"), int):
                out.add(item["claim_id"])
    return out


def _links(session: Session, claim_id: int) -> list[ClaimLink]:
    return list(
        session.execute(
            sa.select(ClaimLink)
            .where(sa.or_(col(ClaimLink.claim_a_id) == claim_id, col(ClaimLink.claim_b_id) == claim_id))
            .order_by(col(ClaimLink.created_at), col(ClaimLink.claim_a_id), col(ClaimLink.claim_b_id))
        ).scalars()
    )


def related_claims(session: Session, *, claim_id: int) -> RelatedView:
    claim = claims_service.get_claim(session, claim_id)
    flagged = _flagged(session, claim_id)
    found = related.related_to(session, claim, flagged=flagged)
    links = _links(session, claim_id)
    others = {
        c.id: c
        for c in session.execute(
            sa.select(Claim).where(
                col(Claim.id).in_([lk.claim_b_id if lk.claim_a_id == claim_id else lk.claim_a_id for lk in links])
            )
        ).scalars()
    }
    linked = []
    for lk in links:
        other = others.get(lk.claim_b_id if lk.claim_a_id == claim_id else lk.claim_a_id)
        if other is not None:
            linked.append(Linked(other, lk.reason, lk.linked_by, lk.created_at))
    return RelatedView(claim, found, linked, flagged)


def related_to_candidate(session: Session, *, principal: Principal, article_id: int, index: int) -> related.Related:
    """What the related view would list for the claim a candidate would make (its sentence,
    claimant and first figure, the article's language), before anyone accepts it. Read-only: the
    claim is never stored. The same visibility as the article (404 otherwise)."""
    article = get_article(session, principal=principal, article_id=article_id)
    row = session.execute(
        sa.select(ArticleCandidate).where(
            col(ArticleCandidate.article_id) == article_id, col(ArticleCandidate.index) == index
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Article {article_id} has no candidate {index}.")
    candidate = row.data
    probe = Claim(
        id=0,  # no claim has it: nothing is excluded from the search but the probe itself
        text=candidate["text"],
        claimant=candidate.get("claimant") or None,
        figure=_figure(candidate, article),
        language=article.language,
    )
    return related.related_to(session, probe, flagged=())


def _pair(claim_id: int, other_id: int) -> tuple[int, int]:
    if claim_id == other_id:
        raise Unprocessable(
            "A claim cannot be linked to itself.",
            errors=[{"loc": ["path", "other_id"], "msg": "same as the claim", "type": "value_error"}],
        )
    return (claim_id, other_id) if claim_id < other_id else (other_id, claim_id)


@dataclass
class LinkOutcome:
    link: ClaimLink
    created: bool


def link_claims(
    session: Session, *, principal: Principal, claim_id: int, other_id: int, reason: str | None
) -> LinkOutcome:
    """Link two claims both ways. Linking a linked pair again changes nothing (and records nothing)."""
    claim = claims_service.get_claim(session, claim_id)
    other = claims_service.get_claim(session, other_id)
    a, b = _pair(claim_id, other_id)
    existing = session.get(ClaimLink, (a, b))
    if existing is not None:
        return LinkOutcome(existing, False)
    now = clock.now()
    link = ClaimLink(claim_a_id=a, claim_b_id=b, reason=reason, linked_by=principal.user_id, created_at=now)
    try:
        with session.begin_nested():
            session.add(link)
            session.flush()
    except IntegrityError:
        # A concurrent request linked the same pair first (PostgreSQL); that is the same outcome.
        existing = session.get(ClaimLink, (a, b), populate_existing=True)
        if existing is None:
            raise
        return LinkOutcome(existing, False)
    for this, that in ((claim, other_id), (other, claim_id)):
        claims_service.emit_claim_event(
            session, this, "claim.updated", principal.actor, {"related_linked": that, "reason": reason}, at=now
        )
    return LinkOutcome(link, True)


def unlink_claims(session: Session, *, principal: Principal, claim_id: int, other_id: int) -> bool:
    """Remove a hand-made link. Returns whether there was one; unlinking twice is not an error."""
    claim = claims_service.get_claim(session, claim_id)
    other = claims_service.get_claim(session, other_id)
    a, b = _pair(claim_id, other_id)
    removed = session.execute(
        sa.delete(ClaimLink)
        .where(col(ClaimLink.claim_a_id) == a, col(ClaimLink.claim_b_id) == b)
        .execution_options(synchronize_session=False)
    )
    if not getattr(removed, "rowcount", 0):
        return False
    now = clock.now()
    for this, that in ((claim, other_id), (other, claim_id)):
        claims_service.emit_claim_event(
            session, this, "claim.updated", principal.actor, {"related_unlinked": that}, at=now
        )
    return True
