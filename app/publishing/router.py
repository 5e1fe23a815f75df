"""Public fact-check pages, their JSON feed, the rating scale, and the ClaimReview export."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.auth.deps import Viewer
from app.claims.service import parse_id
from app.config import Settings
from app.db import CommitOnReturn, Database, ReadSessionDep, get_database
from app.deps import SettingsDep
from app.errors import InvalidCursor, problem_response
from app.evidence.download import FILE_RESPONSES, blob_response
from app.pagination import CursorQuery, LimitQuery, decode_cursor, finish_page
from app.publishing import claimreview, service
from app.publishing.ratings import scale_for
from app.validation import MAX_ID

api_router = APIRouter(prefix="/api/v1", tags=["publishing"], route_class=CommitOnReturn)
public_router = APIRouter(prefix="/public", tags=["public"], route_class=CommitOnReturn)

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
PUBLIC_CACHE = "public, max-age=60"


def _json_ld(data: dict[str, Any]) -> str:
    """JSON for a <script> element: '<', '>' and '&' escaped so the text can never close the tag."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@api_router.get(
    "/claims/{claim_id}/claimreview",
    summary="The claim's schema.org ClaimReview (JSON-LD)",
    description=(
        "Describes the last published verdict. While a claim is reopened or being re-checked it still "
        "describes what was published, with `creativeWorkStatus: UnderReview`. 409 if never published."
    ),
    responses={
        200: {"content": {"application/ld+json": {}}, "description": "ClaimReview JSON-LD"},
        401: problem_response("No valid API key"),
        404: problem_response("Unknown claim"),
        409: problem_response("Never published"),
    },
    response_class=Response,
)
def get_claimreview(claim_id: str, principal: Viewer, session: ReadSessionDep, settings: SettingsDep) -> Response:
    review = service.claimreview_for(session, claim_id=parse_id(claim_id), settings=settings)
    return Response(json.dumps(review, ensure_ascii=False), media_type="application/ld+json")


class PublicFactCheck(BaseModel):
    id: int
    url: str
    claim_reviewed: str = Field(description="The claim, shortened to 75 characters at most.")
    text: str
    claimant: str | None
    appearance_url: str | None
    rating: str | None
    label: str | None
    rating_value: int | None
    summary: str | None
    first_published_at: datetime | None
    published_at: datetime | None
    under_review: bool = Field(description="Reopened or being re-checked; the verdict shown is the last published.")


class PublicFactCheckList(BaseModel):
    items: list[PublicFactCheck]
    next_cursor: str | None


@public_router.get(
    "/fact-checks",
    response_model=PublicFactCheckList,
    summary="Published fact-checks, newest first",
    responses={400: problem_response("Bad cursor")},
)
def list_fact_checks(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    settings: SettingsDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> PublicFactCheckList:
    position = decode_cursor(cursor, "public")
    before: tuple[str, int] | None = None
    if position is not None:
        if not (
            isinstance(position, list)
            and len(position) == 2
            and isinstance(position[0], str)
            and isinstance(position[1], int)
        ):
            raise InvalidCursor("The cursor is not one this list handed out.")
        try:
            at = datetime.fromisoformat(position[0])
        except ValueError as exc:
            raise InvalidCursor("The cursor is not one this list handed out.") from exc
        if at.tzinfo is None or not 0 <= position[1] <= MAX_ID:
            raise InvalidCursor("The cursor is not one this list handed out.")
        before = (position[0], position[1])
    rows = service.list_public(session, before=before, limit=limit)
    rows, next_cursor = finish_page(
        request, response, rows, limit=limit, kind="public", position=lambda c: [_iso(c.published_at), c.id]
    )
    response.headers["Cache-Control"] = PUBLIC_CACHE
    items = []
    for c in rows:
        assert c.id is not None
        snap = c.published_verdict or {}
        shown = claimreview.shown_claim(c)
        items.append(
            PublicFactCheck(
                id=c.id,
                url=claimreview.public_url(settings, c.id),
                claim_reviewed=claimreview.shorten(shown.text),
                text=shown.text,
                claimant=shown.claimant,
                appearance_url=shown.appearance_url,
                rating=snap.get("rating"),
                label=snap.get("label"),
                rating_value=snap.get("rating_value"),
                summary=snap.get("summary"),
                first_published_at=c.first_published_at,
                published_at=c.published_at,
                under_review=claimreview.under_review(c),
            )
        )
    return PublicFactCheckList(items=items, next_cursor=next_cursor)


def _iso(value: datetime | None) -> str:
    assert value is not None  # public claims are published ones
    return value.isoformat()


def _page_context(settings: Settings) -> dict[str, Any]:
    return {
        "org_name": settings.org_name,
        "org_url": settings.org_url_or_base,
        "base_url": settings.public_base_url.rstrip("/"),
    }


@public_router.get(
    "/fact-checks/{claim_id}",
    response_class=HTMLResponse,
    summary="A fact-check's public page (HTML with ClaimReview JSON-LD)",
    responses={404: problem_response("Not published, or not public")},
)
def fact_check_page(claim_id: str, session: ReadSessionDep, settings: SettingsDep) -> HTMLResponse:
    page = service.public_page(session, claim_id=parse_id(claim_id, "fact-check"), settings=settings)
    claim = page.claim
    shown = claimreview.shown_claim(claim)
    verdict = claim.published_verdict or {}
    html = _templates.get_template("fact_check.html").render(
        **_page_context(settings),
        title=f"{verdict.get('label')}: {claimreview.shorten(shown.text, 60)}",
        lang=shown.language or "en",
        claim=shown,
        verdict=verdict,
        evidence=page.evidence,
        corrections=page.corrections,
        review=page.review,
        json_ld=_json_ld(page.review),
        under_review=page.under_review,
        first_published=claimreview._date(claim.first_published_at),
        last_published=claimreview._date(claim.published_at),
    )
    return HTMLResponse(html, headers={"Cache-Control": PUBLIC_CACHE, "Content-Security-Policy": PAGE_CSP})


PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'"


class RatingOut(BaseModel):
    id: str
    label: str
    definition: str
    ratingValue: int


@public_router.get(
    "/rating-scale",
    response_model=list[RatingOut],
    summary="The desk's rating scale",
    description="JSON by default; an HTML page when the client prefers text/html (a browser).",
    responses={200: {"content": {"text/html": {}}}},
)
def rating_scale(settings: SettingsDep, accept: Annotated[str | None, Header()] = None) -> Any:
    scale = list(scale_for(settings.rating_scale).values())
    if accept and "text/html" in accept.split(",")[0]:
        html = _templates.get_template("rating_scale.html").render(
            **_page_context(settings), title="How we rate claims", scale=scale
        )
        return HTMLResponse(html, headers={"Cache-Control": PUBLIC_CACHE, "Content-Security-Policy": PAGE_CSP})
    out = [RatingOut(id=r.id, label=r.label, definition=r.definition, ratingValue=r.rating_value) for r in scale]
    return Response(
        json.dumps([o.model_dump() for o in out], ensure_ascii=False),
        media_type="application/json",
        headers={"Cache-Control": PUBLIC_CACHE},
    )


@public_router.get(
    "/evidence/{evidence_id}/content",
    summary="A public evidence file of a published fact-check",
    response_class=Response,
    responses={**FILE_RESPONSES, 404: problem_response("No such public file")},
)
async def public_evidence_file(request: Request, evidence_id: str) -> Response:
    database: Database = get_database(request)
    row = await run_in_threadpool(_load_public_file, database, parse_id(evidence_id, "evidence"))
    assert row.sha256 is not None and row.media_type is not None
    return await blob_response(
        request,
        request.app.state.blob_store,
        sha256=row.sha256,
        media_type=row.media_type,
        filename=row.filename,
        size=row.size,
    )


# HEAD answers like GET without the body (players probe size and ranges); kept out of the schema so
# the operation has one id.
public_router.add_api_route(
    "/evidence/{evidence_id}/content", public_evidence_file, methods=["HEAD"], include_in_schema=False
)


def _load_public_file(database: Database, evidence_id: int) -> Any:
    with database.read_session() as session:
        return service.public_file(session, evidence_id=evidence_id)
