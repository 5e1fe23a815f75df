"""Intake routes (articles and their candidates) and related-claim routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status

from app.auth.deps import Contributor, Editor, Viewer
from app.claims import service as claims_service
from app.claims.router import COMMON_ERRORS
from app.claims.schemas import ClaimPublic
from app.claims.states import State
from app.db import CommitOnReturn, ReadSessionDep, WriteSessionDep
from app.deps import SettingsDep
from app.errors import NotFound, problem_response
from app.intake import service
from app.intake.models import Article
from app.intake.schemas import (
    AcceptIn,
    ArticleIn,
    ArticleList,
    ArticlePublic,
    ArticleSummary,
    CandidatePublic,
    DuplicatePublic,
    FigureMatchPublic,
    LinkedPublic,
    LinkIn,
    LinkPublic,
    RelatedPublic,
)
from app.pagination import CursorQuery, LimitQuery, finish_page, int_position

router = APIRouter(prefix="/api/v1", tags=["intake"], route_class=CommitOnReturn)

ARTICLE_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    404: problem_response("Unknown article, or not yours to see"),
}


def _article_out(article: Article, candidates: list[dict[str, Any]]) -> ArticlePublic:
    assert article.id is not None
    return ArticlePublic(
        id=article.id,
        text=article.text,
        url=article.url,
        outlet=article.outlet,
        published_at=article.published_at,
        language=article.language,
        note=article.note,
        sentences=article.sentences,
        submitted_by=article.submitted_by,
        created_at=article.created_at,
        candidates=[CandidatePublic.model_validate(c) for c in candidates],
    )


def _index(raw: str) -> int:
    if raw.isascii() and raw.isdigit() and len(raw) <= 9:
        return int(raw)
    raise NotFound(f"No candidate {raw!r}.")


@router.post(
    "/intake/articles",
    status_code=status.HTTP_201_CREATED,
    response_model=ArticlePublic,
    summary="Submit an article and get its check-worthy sentences",
    description=(
        "Stores the article and the candidate claims found in it (sentence, claimant, figures, dates, "
        "hedges, score and the reasons for it). `text[start:end]` of the article is each candidate's "
        "text. Only English is analysed; another language gets no candidates and a `note`."
    ),
    responses={**COMMON_ERRORS, 413: problem_response("The article is too long")},
)
def create_article(
    body: ArticleIn, response: Response, principal: Contributor, session: WriteSessionDep
) -> ArticlePublic:
    article, candidates = service.create_article(session, principal=principal, data=body)
    response.headers["Location"] = f"/api/v1/intake/articles/{article.id}"
    return _article_out(article, candidates)


@router.get(
    "/intake/articles",
    response_model=ArticleList,
    summary="List articles",
    description="Newest first. Editors see every article; others see the ones they submitted.",
    responses={**COMMON_ERRORS, 400: problem_response("Bad cursor")},
)
def list_articles(
    request: Request,
    response: Response,
    principal: Contributor,
    session: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> ArticleList:
    rows = service.list_articles(session, principal=principal, before_id=int_position(cursor, "articles"), limit=limit)
    rows, next_cursor = finish_page(
        request, response, rows, limit=limit, kind="articles", position=lambda r: r.article.id
    )
    items = [
        ArticleSummary(
            id=r.article.id or 0,
            url=r.article.url,
            outlet=r.article.outlet,
            published_at=r.article.published_at,
            language=r.article.language,
            note=r.article.note,
            submitted_by=r.article.submitted_by,
            created_at=r.article.created_at,
            candidate_count=r.candidates,
            accepted_count=r.accepted,
        )
        for r in rows
    ]
    return ArticleList(items=items, next_cursor=next_cursor)


@router.get(
    "/intake/articles/{article_id}",
    response_model=ArticlePublic,
    summary="Read an article and its candidates",
    description="Editors read any article; others only the ones they submitted (anything else is 404).",
    responses=ARTICLE_ERRORS,
)
def get_article(article_id: str, principal: Contributor, session: ReadSessionDep) -> ArticlePublic:
    article = service.get_article(
        session, principal=principal, article_id=claims_service.parse_id(article_id, "article")
    )
    assert article.id is not None
    return _article_out(article, service.candidates_of(session, article.id))


@router.post(
    "/intake/articles/{article_id}/candidates/{index}/accept",
    status_code=status.HTTP_201_CREATED,
    response_model=ClaimPublic,
    summary="Turn a candidate into a claim",
    description=(
        "Editors, or whoever submitted the article. The claim takes the sentence, claimant, the "
        "article's URL, outlet, date and language, the surrounding sentences as context, the first "
        "figure, and `source` pointing back at the span. The optional body adjusts text, claimant, "
        "priority and tags first. A candidate is accepted once: again is 409."
    ),
    responses={
        **ARTICLE_ERRORS,
        409: problem_response("Accepted before (`claim_id` names the claim)"),
    },
)
def accept_candidate(
    article_id: str,
    index: str,
    response: Response,
    principal: Contributor,
    session: WriteSessionDep,
    settings: SettingsDep,
    body: Annotated[AcceptIn | None, Body()] = None,
) -> ClaimPublic:
    claim = service.accept_candidate(
        session,
        principal=principal,
        article_id=claims_service.parse_id(article_id, "article"),
        index=_index(index),
        adjust=body,
        settings=settings,
    )
    out = claims_service.present(session, [claim], principal=principal, settings=settings)[0]
    response.headers["Location"] = f"/api/v1/claims/{out.id}"
    response.headers["ETag"] = f'"{out.version}"'
    return out


# --- related claims --------------------------------------------------------------------------


def _duplicate_reason(score: float, flagged: bool) -> str:
    said = "the same text once normalised" if score >= 0.999 else f"text {round(score * 100)}% similar once normalised"
    return said + ("; flagged when the claim was created" if flagged else "")


@router.get(
    "/claims/{claim_id}/related",
    response_model=RelatedPublic,
    tags=["claims"],
    summary="Possible duplicates, figures about the same thing, and linked claims",
    description=(
        "`duplicates`: claims whose text is alike (character-trigram similarity of the normalised texts "
        "at or above 0.6). `figures`: claims by other claimants that give a figure for the same thing in "
        'the same event ("61 dead" vs "over 100 dead"). `linked`: claims an editor linked by hand. '
        "Each comes with a reason. Candidates are found through the full-text index among recent claims."
    ),
    responses=COMMON_ERRORS,
)
def get_related(claim_id: str, principal: Viewer, session: ReadSessionDep) -> RelatedPublic:
    view = service.related_claims(session, claim_id=claims_service.parse_id(claim_id))
    flagged = view.flagged
    return RelatedPublic(
        claim_id=view.claim.id or 0,
        duplicates=[
            DuplicatePublic(
                claim_id=m.claim.id or 0,
                text=m.claim.text,
                state=State(m.claim.state),
                similarity=m.score,
                reason=_duplicate_reason(m.score, m.claim.id in flagged),
            )
            for m in view.related.duplicates
        ],
        figures=[
            FigureMatchPublic(
                claim_id=f.claim.id or 0, text=f.claim.text, claimant=f.claim.claimant, figure=f.figure, reason=f.reason
            )
            for f in view.related.figures
        ],
        linked=[
            LinkedPublic(
                claim_id=lk.claim.id or 0,
                text=lk.claim.text,
                state=State(lk.claim.state),
                reason=lk.reason or "linked by hand",
                linked_by=lk.linked_by,
                linked_at=lk.linked_at,
            )
            for lk in view.linked
        ],
    )


@router.post(
    "/claims/{claim_id}/related/{other_id}",
    response_model=LinkPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["claims"],
    summary="Link two claims as related",
    description="Both ways. 201 when linked now, 200 when they already were. Linking a claim to itself is 422.",
    responses={**COMMON_ERRORS, 200: {"description": "Already linked", "model": LinkPublic}},
)
def link_claims(
    claim_id: str,
    other_id: str,
    response: Response,
    principal: Editor,
    session: WriteSessionDep,
    body: Annotated[LinkIn | None, Body()] = None,
) -> LinkPublic:
    cid = claims_service.parse_id(claim_id)
    oid = claims_service.parse_id(other_id)
    outcome = service.link_claims(
        session, principal=principal, claim_id=cid, other_id=oid, reason=body.reason if body else None
    )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    link = outcome.link
    return LinkPublic(
        claim_id=cid, other_id=oid, reason=link.reason, linked_by=link.linked_by, linked_at=link.created_at
    )


@router.delete(
    "/claims/{claim_id}/related/{other_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["claims"],
    summary="Unlink two claims",
    description="Removes a hand-made link, both ways. Unlinking claims that are not linked is also 204.",
    responses=COMMON_ERRORS,
)
def unlink_claims(claim_id: str, other_id: str, principal: Editor, session: WriteSessionDep) -> Response:
    service.unlink_claims(
        session,
        principal=principal,
        claim_id=claims_service.parse_id(claim_id),
        other_id=claims_service.parse_id(other_id),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
