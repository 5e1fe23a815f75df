"""Intake: paste an article, read the check-worthy sentences found in it, accept them as claims.

Every action is the API's: ``intake_service.create_article`` / ``get_article`` / ``candidates_of``
/ ``accept_candidate`` / ``list_articles`` / ``related_claims``, with the same role (contributor and
above) and the same object rule (editors see every article, others their own; anything else 404).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response

from app.auth.roles import Role
from app.claims import service as claims_service
from app.db import get_database
from app.errors import DomainError
from app.intake import service as intake_service
from app.intake.related import Related
from app.intake.router import _duplicate_reason, _index
from app.intake.schemas import AcceptIn, ArticleIn, CandidatePublic
from app.web.deps import Contributor, DeskUser, PostedForm, settings_of
from app.web.forms import utc_field, validated
from app.web.render import FLASH, DeskRoute, Problem, page, problem_of, see_other

router = APIRouter(route_class=DeskRoute)

RECENT = 20
PRIORITIES = ("low", "normal", "high", "urgent")

FLASH.update(
    {
        "article_read": "Article read: its check-worthy sentences are below.",
        "accepted": "Accepted: the claim is created and waits in Submitted.",
    }
)


# --- shaping what the page shows --------------------------------------------------------------


@dataclass
class Piece:
    """A run of text, marked when it is a candidate's span (in the article) or a figure (in a candidate)."""

    text: str
    mark: int | None = None  # the candidate index, or the figure number


def split_marked(text: str, spans: list[tuple[int, int, int]], offset: int = 0) -> list[Piece]:
    """``text`` cut into plain and marked pieces; ``spans`` are (start, end, label) in the coordinates
    of the text ``offset`` characters earlier. Overlapping or out-of-range spans are skipped."""
    pieces: list[Piece] = []
    at = 0
    for start, end, label in sorted(spans):
        start, end = start - offset, end - offset
        if start < at or end > len(text) or start >= end:
            continue
        if start > at:
            pieces.append(Piece(text[at:start]))
        pieces.append(Piece(text[start:end], label))
        at = end
    if at < len(text):
        pieces.append(Piece(text[at:]))
    return pieces


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def figure_text(f: dict[str, Any]) -> str:
    """'up to 9,000 homes flooded', from the parsed parts."""
    low, high = f.get("low"), f.get("high")
    if low is not None and high is not None and low != high:
        amount = f"{_number(low)}\u2013{_number(high)}"
    else:
        amount = _number(low if low is not None else high)
    unit, counted = f.get("unit") or "", f.get("counted") or ""
    if unit and unit.lower() in counted.lower().split():
        unit = ""  # "40 people died", not "40 people people died"
    words = [f.get("qualifier") or "", amount, unit, counted]
    said = " ".join(w for w in words if w)
    return said or (f.get("text") or "")


@dataclass
class CandidateView:
    c: CandidatePublic
    pieces: list[Piece]
    figures: list[str]
    related: dict[str, Any] | None = None
    values: dict[str, str] = field(default_factory=dict)
    problem: Problem | None = None


def _candidate_views(
    session: Any, article_id: int, user: DeskUser, related_for: int | None = None
) -> list[CandidateView]:
    views = []
    for raw in intake_service.candidates_of(session, article_id):
        c = CandidatePublic.model_validate(raw)
        spans = [(f.start, f.end, n) for n, f in enumerate(c.figures) if f.start is not None and f.end is not None]
        view = CandidateView(
            c=c,
            pieces=split_marked(c.text, spans, offset=c.start),
            figures=[figure_text(f.model_dump()) for f in c.figures],
        )
        if c.accepted_claim_id is not None:
            view.related = _related(session, c.accepted_claim_id)
        elif c.index == related_for:  # asked for: this one alone, the search is not free
            found = intake_service.related_to_candidate(
                session, principal=user.principal, article_id=article_id, index=c.index
            )
            view.related = _related_view(found, set())
        views.append(view)
    return views


def _related(session: Any, claim_id: int) -> dict[str, Any] | None:
    """Likely duplicates and other parties' figures for the same thing, as the API lists them."""
    try:
        found = intake_service.related_claims(session, claim_id=claim_id)
    except DomainError:
        return None
    return _related_view(found.related, found.flagged)


def _related_view(found: Related, flagged: set[int]) -> dict[str, Any]:
    return {
        "duplicates": [
            {
                "id": m.claim.id,
                "text": m.claim.text,
                "state": m.claim.state,
                "reason": _duplicate_reason(m.score, m.claim.id in flagged),
            }
            for m in found.duplicates
        ],
        "figures": [
            {"id": f.claim.id, "text": f.claim.text, "claimant": f.claim.claimant, "reason": f.reason}
            for f in found.figures
        ],
    }


# --- the pages ---------------------------------------------------------------------------------


def _intake_page(
    request: Request,
    user: DeskUser,
    *,
    values: dict[str, str] | None = None,
    status: int = 200,
    problem: Problem | None = None,
) -> Response:
    with get_database(request).read_session() as session:
        recent = intake_service.list_articles(session, principal=user.principal, before_id=None, limit=RECENT)
    return page(
        request,
        "intake.html",
        title="Intake",
        active="intake",
        status=status,
        problem=problem,
        values=values or {},
        recent=recent[:RECENT],
        more=len(recent) > RECENT,
        sees_all=user.has(Role.editor),
    )


@router.get("/intake")
def intake_page(request: Request, user: Contributor) -> Response:
    return _intake_page(request, user)


@router.post("/intake")
def submit_article(request: Request, user: Contributor, form: PostedForm) -> Response:
    values = form.values()
    try:
        data = validated(
            ArticleIn,
            {
                "text": values.get("text", ""),  # as pasted: candidate offsets index the text exactly
                "url": form.optional("url"),
                "outlet": form.optional("outlet"),
                "published_at": utc_field(form.optional("published_at")),
                "language": form.optional("language"),
            },
        )
        with get_database(request).transaction() as session:
            article, _ = intake_service.create_article(session, principal=user.principal, data=data)
            article_id = article.id
    except DomainError as exc:
        return _intake_page(request, user, values=values, status=exc.status, problem=problem_of(exc))
    return see_other(f"/desk/intake/articles/{article_id}", ok="article_read")


def _article_page(
    request: Request,
    user: DeskUser,
    raw_id: str,
    *,
    failed: int | None = None,
    related_for: int | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    problem: Problem | None = None,
) -> Response:
    article_id = claims_service.parse_id(raw_id, "article")
    with get_database(request).read_session() as session:
        article = intake_service.get_article(session, principal=user.principal, article_id=article_id)
        candidates = _candidate_views(session, article_id, user, related_for)
    for view in candidates:
        if view.c.index == failed:
            view.values = values or {}
            view.problem = problem
    text_pieces = split_marked(article.text, [(v.c.start, v.c.end, v.c.index) for v in candidates])
    return page(
        request,
        "intake_article.html",
        title=f"Article {article.id}",
        active="intake",
        status=status,
        article=article,
        candidates=candidates,
        text_pieces=text_pieces,
        priorities=PRIORITIES,
    )


@router.get("/intake/articles/{article_id}")
def article_page(request: Request, user: Contributor, article_id: str, related: str = "") -> Response:
    wanted = int(related) if related.isascii() and related.isdigit() and len(related) <= 9 else None
    return _article_page(request, user, article_id, related_for=wanted)


@router.post("/intake/articles/{article_id}/candidates/{index}/accept")
def accept(request: Request, user: Contributor, form: PostedForm, article_id: str, index: str) -> Response:
    values = form.values()
    aid = claims_service.parse_id(article_id, "article")
    number: int | None = None
    try:
        number = _index(index)
        adjust = validated(
            AcceptIn,
            {
                "text": form.optional("text"),
                "claimant": form.optional("claimant"),
                "priority": form.optional("priority"),
                "tags": [t for t in (p.strip() for p in form.get("tags").split(",")) if t],
            },
        )
        with get_database(request).transaction() as session:
            intake_service.accept_candidate(
                session,
                principal=user.principal,
                article_id=aid,
                index=number,
                adjust=adjust,
                settings=settings_of(request),
            )
    except DomainError as exc:
        return _article_page(
            request, user, article_id, failed=number, values=values, status=exc.status, problem=problem_of(exc)
        )
    return see_other(f"/desk/intake/articles/{aid}?ok=accepted#candidate-{number}")
