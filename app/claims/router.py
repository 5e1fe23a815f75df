"""Claims routes: parse, authorise, call one service function, return the public shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app import idempotency
from app.auth.deps import Checker, Contributor, CurrentPrincipal, Viewer
from app.auth.service import Principal
from app.claims import service
from app.claims.schemas import (
    ActionBody,
    BatchIn,
    BatchOut,
    BatchResult,
    ClaimCreate,
    ClaimList,
    ClaimPublic,
    ClaimUpdate,
    EventList,
    EventPublic,
    Priority,
    VerdictIn,
)
from app.claims.states import State
from app.config import Settings
from app.db import CommitOnReturn, ReadSessionDep, WriteSessionDep, get_database
from app.deps import IdempotencyKey, IfMatch, SettingsDep
from app.errors import DomainError, Unprocessable, problem_response
from app.pagination import CursorQuery, LimitQuery, finish_page, int_position
from app.validation import MAX_ID, NO_NUL_PATTERN, UTCDatetime

router = APIRouter(prefix="/api/v1", tags=["claims"], route_class=CommitOnReturn)

COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_response("No valid API key"),
    403: problem_response("The role does not admit this"),
    404: problem_response("Unknown claim"),
    422: problem_response("Invalid input; `errors` lists the fields"),
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    409: problem_response("Not allowed from this state (`allowed_actions`) or unmet precondition (`missing`)"),
    412: problem_response("If-Match is stale"),
}


def _one(session: Any, claim: Any, principal: Principal, settings: Settings, *, new: bool = False) -> ClaimPublic:
    return service.present(session, [claim], principal=principal, settings=settings, new=new)[0]


def _etag(response: Response, claim: ClaimPublic) -> None:
    response.headers["ETag"] = f'"{claim.version}"'


@router.post(
    "/claims",
    status_code=status.HTTP_201_CREATED,
    response_model=ClaimPublic,
    summary="Submit a claim",
    description="Creates a claim in state `submitted`. Send `Idempotency-Key` to make retries safe.",
    responses={**COMMON_ERRORS, 409: problem_response("Same Idempotency-Key still running")},
)
def create_claim(
    request: Request,
    response: Response,
    body: ClaimCreate,
    principal: Contributor,
    session: WriteSessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    # The body's fingerprint is only needed, and only paid for, when the request carries a key.
    fp = idempotency.fingerprint("POST /claims", body.model_dump(mode="json")) if idempotency_key is not None else ""
    replay = idempotency.check(session, api_key_id=principal.api_key_id, key=idempotency_key, fp=fp)
    if replay is not None:
        headers = {"Idempotent-Replayed": "true"}
        if replay.location:
            headers["Location"] = replay.location
        if "version" in replay.body:
            headers["ETag"] = f'"{replay.body["version"]}"'
        return JSONResponse(replay.body, status_code=replay.status_code, headers=headers)
    claim = service.create_claim(session, principal=principal, data=body, settings=settings)
    out = _one(session, claim, principal, settings, new=True)
    location = f"/api/v1/claims/{out.id}"
    if idempotency_key is not None:
        idempotency.remember(
            session,
            api_key_id=principal.api_key_id,
            key=idempotency_key,
            fp=fp,
            status_code=201,
            body=out.model_dump(mode="json"),
            location=location,
        )
    response.headers["Location"] = location
    _etag(response, out)
    return out


# claims:batch commits this many items at a time (about 0.2-0.5 s of a SQLite writer's time, measured),
# or as few as BATCH_COMMIT_AT_LEAST when other writers are waiting for SQLite's write lock.
BATCH_COMMIT_EVERY = 50
BATCH_COMMIT_AT_LEAST = 5


@router.post(
    "/claims:batch",
    response_model=BatchOut,
    summary="Submit up to 1,000 claims at once",
    description=(
        "Each item is checked and created on its own: one bad item does not stop the others. Items are "
        f"committed in groups of {BATCH_COMMIT_EVERY} as the request goes (of {BATCH_COMMIT_AT_LEAST} on SQLite "
        "while other writers wait), so other writers (and webhook deliveries of the new claims) are not held "
        "up for the whole batch. If the request fails part way (any 5xx answer or a dropped connection), "
        "the groups committed before that stay created: list your claims before you send the batch again."
    ),
    responses=COMMON_ERRORS,
)
def create_claims_batch(
    request: Request, body: BatchIn, principal: Contributor, session: WriteSessionDep, settings: SettingsDep
) -> BatchOut:
    database = get_database(request)
    results: list[BatchResult] = []
    in_group = 0
    for index, raw in enumerate(body.items):
        if in_group >= BATCH_COMMIT_EVERY or (in_group >= BATCH_COMMIT_AT_LEAST and database.writers_waiting()):
            # A group's end: commit it, letting waiting writers in (SQLite has one writer at a time:
            # a checker's hand-out or the webhook worker should not wait for a whole group) and its
            # events out to the webhook worker.
            session.commit()
            in_group = 0
        in_group += 1
        try:
            data = ClaimCreate.model_validate(raw)
        except ValidationError as exc:
            problem = Unprocessable(
                "The item is not a valid claim.", errors=_validation_errors(exc, index)
            ).to_problem()
            results.append(BatchResult(index=index, status=422, problem=problem))
            continue
        try:
            with session.begin_nested():
                claim = service.create_claim(session, principal=principal, data=data, settings=settings)
        except DomainError as exc:
            results.append(BatchResult(index=index, status=exc.status, problem=exc.to_problem()))
            continue
        results.append(BatchResult(index=index, status=201, claim=_one(session, claim, principal, settings, new=True)))
    return BatchOut(results=results)


def _validation_errors(exc: ValidationError, index: int) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", "items", index, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


@router.get(
    "/claims",
    response_model=ClaimList,
    summary="List claims",
    description="Newest first. Filters combine with AND. `q` is full-text search over text, claimant and context.",
    responses={**COMMON_ERRORS, 400: problem_response("Bad cursor")},
)
def list_claims(
    request: Request,
    response: Response,
    principal: Viewer,
    session: ReadSessionDep,
    settings: SettingsDep,
    state: Annotated[list[State] | None, Query(description="One or more states.")] = None,
    assignee: Annotated[str | None, Query(description="A user id, or `me`.", max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=64, pattern=NO_NUL_PATTERN)] = None,
    priority: Priority | None = None,
    claimant: Annotated[str | None, Query(max_length=300, pattern=NO_NUL_PATTERN)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=NO_NUL_PATTERN, description="Full-text search.")
    ] = None,
    overdue: bool | None = None,
    created_after: UTCDatetime | None = None,
    created_before: UTCDatetime | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> ClaimList:
    assignee_id: int | None = None
    if assignee is not None:
        if assignee == "me":
            assignee_id = principal.user_id
        elif assignee.isascii() and assignee.isdigit() and int(assignee) <= MAX_ID:
            assignee_id = int(assignee)
        else:
            raise Unprocessable(
                "assignee is a user id or `me`.", errors=[{"loc": ["query", "assignee"], "msg": "invalid"}]
            )
    filters = service.ClaimFilters(
        state=[s.value for s in state] if state else None,
        assignee_id=assignee_id,
        tag=tag,
        priority=priority.value if priority else None,
        claimant=claimant,
        q=q.strip() or None if q else None,
        overdue=overdue,
        created_after=created_after,
        created_before=created_before,
    )
    before_id = int_position(cursor, "claims")
    rows = service.list_claim_rows(session, filters=filters, before_id=before_id, limit=limit)
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="claims")
    return ClaimList(
        items=service.present(session, rows, principal=principal, settings=settings), next_cursor=next_cursor
    )


@router.get(
    "/claims/{claim_id}",
    response_model=ClaimPublic,
    summary="Read a claim",
    description='Returns `ETag: "<version>"`; send it back in `If-Match` when you change the claim.',
    responses=COMMON_ERRORS,
)
async def get_claim(
    claim_id: str, request: Request, response: Response, principal: Viewer, settings: SettingsDep
) -> ClaimPublic:
    cid = service.parse_id(claim_id)
    # Async, with a point read: on a SQLite file this read costs less than a thread-pool trip.
    out = await get_database(request).point_read(
        lambda session: _one(session, service.claim_row(session, cid), principal, settings)
    )
    _etag(response, out)
    return out


@router.patch(
    "/claims/{claim_id}",
    response_model=ClaimPublic,
    summary="Edit a claim",
    description=(
        "Editors edit any claim; the assignee edits the claim they work while it is in_progress (but not "
        "`public`: that is an editor's call); contributors edit their own claims while submitted. Content "
        "is frozen while in_review, published or rejected (409: request changes, reopen or restore first)."
    ),
    responses=WRITE_ERRORS,
)
def update_claim(
    claim_id: str,
    body: ClaimUpdate,
    response: Response,
    principal: Contributor,
    session: WriteSessionDep,
    settings: SettingsDep,
    if_match: IfMatch = None,
) -> ClaimPublic:
    claim = service.update_claim(
        session,
        principal=principal,
        claim_id=service.parse_id(claim_id),
        data=body,
        if_match=if_match,
        settings=settings,
    )
    out = _one(session, claim, principal, settings)
    _etag(response, out)
    return out


async def _may_attempt(action: str, principal: CurrentPrincipal) -> Principal:
    """The action's least role as a dependency, so that it is checked before the body is validated
    (401 -> 403 -> 422 -> 404 -> ..., as on every other route)."""
    service.check_action_role(principal, action)
    return principal


@router.post(
    "/claims/{claim_id}/actions/{action}",
    response_model=ClaimPublic,
    summary="Move a claim through the workflow",
    description=(
        "Actions: queue, reject (reason), restore, start, release, submit, request_changes (comment), "
        "approve, reopen (reason). A 409 names `allowed_actions` or what is `missing`. With a review "
        "quorum above 1, approve records the approval and the claim stays in_review until the last one."
    ),
    responses=WRITE_ERRORS,
)
def act_on_claim(
    claim_id: str,
    action: str,
    response: Response,
    principal: Annotated[Principal, Depends(_may_attempt)],
    session: WriteSessionDep,
    settings: SettingsDep,
    body: Annotated[ActionBody | None, Body()] = None,
    if_match: IfMatch = None,
) -> ClaimPublic:
    outcome = service.perform_action(
        session,
        principal=principal,
        claim_id=service.parse_id(claim_id),
        action_name=action,
        reason=body.reason if body else None,
        comment=body.comment if body else None,
        if_match=if_match,
        settings=settings,
    )
    out = _one(session, outcome.claim, principal, settings)
    _etag(response, out)
    return out


@router.put(
    "/claims/{claim_id}/verdict",
    response_model=ClaimPublic,
    summary="Set the claim's verdict",
    description="By the assignee or an editor while in_progress. Cannot change while in_review (409).",
    responses=WRITE_ERRORS,
)
def set_verdict(
    claim_id: str,
    body: VerdictIn,
    response: Response,
    principal: Checker,
    session: WriteSessionDep,
    settings: SettingsDep,
    if_match: IfMatch = None,
) -> ClaimPublic:
    claim = service.set_verdict(
        session,
        principal=principal,
        claim_id=service.parse_id(claim_id),
        data=body,
        if_match=if_match,
        settings=settings,
    )
    out = _one(session, claim, principal, settings)
    _etag(response, out)
    return out


@router.get(
    "/claims/{claim_id}/events",
    response_model=EventList,
    summary="The claim's audit timeline",
    description="Oldest first. Every event carries its place in the claim's hash chain.",
    responses={**COMMON_ERRORS, 400: problem_response("Bad cursor")},
)
def list_events(
    request: Request,
    response: Response,
    claim_id: str,
    principal: Viewer,
    session: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> EventList:
    after = int_position(cursor, "events")
    rows = service.list_events(session, claim_id=service.parse_id(claim_id), after_id=after, limit=limit)
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="events")
    return EventList(items=[EventPublic.model_validate(e, from_attributes=True) for e in rows], next_cursor=next_cursor)
