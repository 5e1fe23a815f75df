"""The work queue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import Field, StringConstraints

from app.auth.deps import Checker
from app.claims import service as claims_service
from app.claims.schemas import ClaimList, ClaimPublic, Tag
from app.db import CommitOnReturn, ReadSessionDep, WriteSessionDep
from app.deps import SettingsDep
from app.errors import InvalidCursor, problem_response
from app.pagination import CursorQuery, LimitQuery, decode_cursor, finish_page
from app.queue import service
from app.validation import MAX_ID, NO_NUL_PATTERN, StrictInput

router = APIRouter(prefix="/api/v1", tags=["queue"], route_class=CommitOnReturn)


class NextIn(StrictInput):
    tags: list[Tag] | None = Field(default=None, max_length=20, description="Only claims with any of these tags.")


@router.post(
    "/queue/next",
    response_model=ClaimPublic,
    responses={
        204: {"description": "Nothing is queued"},
        401: problem_response("No valid API key"),
        403: problem_response("Checkers and above"),
    },
    summary="Take the next claim",
    description="Atomically assigns the most urgent queued claim to you with a lease and starts it. "
    "No claim is ever handed to two callers.",
)
def take_next(
    response: Response,
    principal: Checker,
    session: WriteSessionDep,
    settings: SettingsDep,
    body: Annotated[NextIn | None, Body()] = None,
) -> Any:
    claim = service.take_next(session, principal=principal, settings=settings, tags=body.tags if body else None)
    if claim is None:
        return Response(status_code=204)
    out = claims_service.present(session, [claim], principal=principal, settings=settings)[0]
    response.headers["ETag"] = f'"{out.version}"'
    return out


@router.get(
    "/queue",
    response_model=ClaimList,
    responses={
        401: problem_response("No valid API key"),
        403: problem_response("Checkers and above"),
    },
    summary="The queue, in the order next hands it out",
)
def list_queue(
    request: Request,
    response: Response,
    principal: Checker,
    session: ReadSessionDep,
    settings: SettingsDep,
    tag: Annotated[
        list[Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL_PATTERN)]] | None,
        Query(description="Only claims with any of these tags."),
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> ClaimList:
    offset = decode_cursor(cursor, "queue") or 0
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_ID:
        raise InvalidCursor("The cursor is not one this list handed out.")
    rows = service.list_queue(session, tags=tag, offset=offset, limit=limit)
    rows, next_cursor = finish_page(
        request, response, rows, limit=limit, kind="queue", position=lambda _: offset + limit
    )
    return ClaimList(
        items=claims_service.present(session, rows, principal=principal, settings=settings),
        next_cursor=next_cursor,
    )
