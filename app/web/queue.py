"""The queue page: the next claim, my claims, what is queued (priority, deadline, overdue), search."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.claims import service as claims_service
from app.claims.models import Claim
from app.claims.schemas import ClaimPublic
from app.claims.states import State
from app.db import get_database
from app.errors import DomainError
from app.queue import service as queue_service
from app.review import service as review_service
from app.web.deps import Checker, PostedForm, Viewer, settings_of
from app.web.render import DeskRoute, Problem, page, problem_of, see_other

router = APIRouter(route_class=DeskRoute)

LIST_LIMIT = 50


def _queue_page(
    request: Request, user: Viewer, q: str = "", *, status: int = 200, problem: Problem | None = None
) -> Response:
    settings = settings_of(request)
    q = q.strip()[:200].replace("\x00", "")
    with get_database(request).read_session() as session:
        queued = queue_service.list_queue(session, tags=None, offset=0, limit=LIST_LIMIT)
        more_queued = len(queued) > LIST_LIMIT
        mine = claims_service.list_claims(
            session,
            filters=claims_service.ClaimFilters(
                assignee_id=user.id, state=[State.in_progress.value, State.in_review.value]
            ),
            before_id=None,
            limit=LIST_LIMIT,
        )[:LIST_LIMIT]
        found = (
            claims_service.list_claims(
                session, filters=claims_service.ClaimFilters(q=q), before_id=None, limit=LIST_LIMIT
            )[:LIST_LIMIT]
            if q
            else []
        )
        stats = review_service.desk_stats(session)

        def shown(rows: list[Claim]) -> list[ClaimPublic]:
            return claims_service.present(session, rows, principal=user.principal, settings=settings)

        context = {
            "queued": shown(queued[:LIST_LIMIT]),
            "more_queued": more_queued,
            "mine": shown(mine),
            "found": shown(found),
            "q": q,
            "stats": stats,
        }
    return page(request, "queue.html", title="Queue", active="queue", status=status, problem=problem, **context)


@router.get("/")
def queue_page(request: Request, user: Viewer, q: str = "") -> Response:
    return _queue_page(request, user, q)


@router.post("/queue/next")
def take_next(request: Request, user: Checker, form: PostedForm) -> Response:
    try:
        with get_database(request).transaction() as session:
            claim = queue_service.take_next(session, principal=user.principal, settings=settings_of(request))
            claim_id = claim.id if claim is not None else None
    except DomainError as exc:
        return _queue_page(request, user, status=exc.status, problem=problem_of(exc))
    if claim_id is None:
        return see_other("/desk/", ok="queue_empty")
    return see_other(f"/desk/claims/{claim_id}", ok="taken")
