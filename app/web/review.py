"""Review: the claims in review, those awaiting my approval first."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.claims import service as claims_service
from app.claims.states import Action, State
from app.db import get_database
from app.web.deps import Editor, settings_of
from app.web.render import DeskRoute, page

router = APIRouter(route_class=DeskRoute)

LIST_LIMIT = 100


@router.get("/review")
def review_page(request: Request, user: Editor) -> Response:
    with get_database(request).read_session() as session:
        rows = claims_service.list_claims(
            session,
            filters=claims_service.ClaimFilters(state=[State.in_review.value]),
            before_id=None,
            limit=LIST_LIMIT,
        )
        more = len(rows) > LIST_LIMIT
        shown = claims_service.present(
            session, rows[:LIST_LIMIT], principal=user.principal, settings=settings_of(request)
        )
    # Oldest submissions first: they have waited longest.
    shown.sort(key=lambda c: c.updated_at)
    awaiting = [c for c in shown if Action.approve.value in c.allowed_actions]
    others = [c for c in shown if Action.approve.value not in c.allowed_actions]
    return page(request, "review.html", title="Review", active="review", awaiting=awaiting, others=others, more=more)
