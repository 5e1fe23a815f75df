"""Assignments, comments and the desk overview."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.auth.deps import Checker, Editor, Viewer
from app.claims.service import parse_id
from app.db import CommitOnReturn, ReadSessionDep, WriteSessionDep
from app.deps import SettingsDep
from app.errors import problem_response
from app.pagination import CursorQuery, LimitQuery, finish_page, int_position
from app.review import service
from app.review.schemas import (
    AssigneeOut,
    AssignmentIn,
    AssignmentsOut,
    CommentIn,
    CommentList,
    CommentOut,
    DeskStats,
    ReviewerOut,
)

router = APIRouter(prefix="/api/v1", tags=["assignments and review"], route_class=CommitOnReturn)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_response("No valid API key"),
    403: problem_response("The role does not admit this"),
    404: problem_response("Unknown claim or assignment"),
    409: problem_response("Not possible in the claim's state"),
    422: problem_response("Invalid input, or a user who cannot take this role"),
}


def _assignments(session: Any, claim_id: int) -> AssignmentsOut:
    data = service.assignments(session, claim_id=claim_id)
    return AssignmentsOut(
        claim_id=claim_id,
        assignee=AssigneeOut(**data.assignee) if data.assignee else None,
        reviewers=[ReviewerOut(**r) for r in data.reviewers],
    )


@router.get(
    "/claims/{claim_id}/assignments",
    response_model=AssignmentsOut,
    responses=ERRORS,
    summary="Who works and who reviews a claim",
)
def get_assignments(claim_id: str, principal: Editor, session: ReadSessionDep) -> AssignmentsOut:
    return _assignments(session, parse_id(claim_id))


@router.post(
    "/claims/{claim_id}/assignments",
    response_model=AssignmentsOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    summary="Assign a checker or add a reviewer",
    description="Assigning a checker to a queued claim starts it for them, with a lease. The assignee must "
    "be an active checker or above; a reviewer an active editor or above (422 otherwise).",
)
def add_assignment(
    claim_id: str, body: AssignmentIn, principal: Editor, session: WriteSessionDep, settings: SettingsDep
) -> AssignmentsOut:
    cid = parse_id(claim_id)
    service.assign(session, principal=principal, claim_id=cid, user_id=body.user_id, role=body.role, settings=settings)
    return _assignments(session, cid)


@router.delete(
    "/claims/{claim_id}/assignments/{user_id}",
    response_model=AssignmentsOut,
    responses=ERRORS,
    summary="Remove a reviewer, or release the assignee (the claim returns to the queue)",
)
def remove_assignment(
    claim_id: str, user_id: str, principal: Editor, session: WriteSessionDep, settings: SettingsDep
) -> AssignmentsOut:
    cid = parse_id(claim_id)
    service.unassign(session, principal=principal, claim_id=cid, user_id=parse_id(user_id, "user"), settings=settings)
    return _assignments(session, cid)


def _comment(c: Any) -> CommentOut:
    return CommentOut.model_validate(c, from_attributes=True)


@router.get(
    "/claims/{claim_id}/comments",
    response_model=CommentList,
    responses=ERRORS,
    summary="The claim's discussion thread (internal, never public)",
)
def list_comments(
    request: Request,
    response: Response,
    claim_id: str,
    principal: Viewer,
    session: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> CommentList:
    rows = service.list_comments(
        session, claim_id=parse_id(claim_id), after_id=int_position(cursor, "comments"), limit=limit
    )
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="comments")
    return CommentList(items=[_comment(c) for c in rows], next_cursor=next_cursor)


@router.post(
    "/claims/{claim_id}/comments",
    response_model=CommentOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    summary="Comment on a claim",
)
def add_comment(
    claim_id: str, body: CommentIn, principal: Checker, session: WriteSessionDep, settings: SettingsDep
) -> CommentOut:
    return _comment(
        service.add_comment(
            session, principal=principal, claim_id=parse_id(claim_id), body=body.body, settings=settings
        )
    )


@router.get("/desk/stats", response_model=DeskStats, responses=ERRORS, summary="The desk at a glance")
def desk_stats(principal: Editor, session: ReadSessionDep) -> DeskStats:
    return DeskStats(**service.desk_stats(session))
