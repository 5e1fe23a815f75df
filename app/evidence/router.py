"""Evidence routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from app import idempotency
from app.auth.deps import CurrentPrincipal, Viewer
from app.claims.service import parse_id
from app.db import ReadSessionDep, WriteSessionDep
from app.deps import IdempotencyKey, SettingsDep
from app.evidence import service
from app.evidence.schemas import EvidenceIn, EvidenceList, EvidencePublic, ReasonIn
from app.pagination import CursorQuery, LimitQuery, encode_cursor, int_position, set_link_header

router = APIRouter(prefix="/api/v1", tags=["evidence"])

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key", **PROBLEM},
    403: {"description": "The role or object rule does not admit this", **PROBLEM},
    404: {"description": "Unknown claim or evidence", **PROBLEM},
    409: {"description": "Claim closed, already retracted or purged", **PROBLEM},
    422: {"description": "Invalid input", **PROBLEM},
}


@router.post(
    "/claims/{claim_id}/evidence",
    status_code=status.HTTP_201_CREATED,
    response_model=EvidencePublic,
    summary="Add evidence to a claim",
    description=(
        "JSON for links and notes. Checkers and above add evidence while a claim is being worked; a "
        "contributor may add to a claim they submitted while it is still submitted."
    ),
    responses=ERRORS,
)
def add_evidence(
    claim_id: str,
    body: EvidenceIn,
    response: Response,
    principal: CurrentPrincipal,
    session: WriteSessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    cid = parse_id(claim_id)
    fp = idempotency.fingerprint(f"POST /claims/{cid}/evidence", body.model_dump(mode="json"))
    replay = idempotency.check(session, api_key_id=principal.api_key_id, key=idempotency_key, fp=fp)
    if replay is not None:
        headers = {
            "Idempotent-Replayed": "true",
            **({"Location": replay.location} if replay.location else {}),
        }
        return JSONResponse(replay.body, status_code=replay.status_code, headers=headers)
    row = service.add_evidence(session, principal=principal, claim_id=cid, data=body, settings=settings)
    out = service.present(row)
    location = f"/api/v1/evidence/{out.id}"
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
    return out


@router.get(
    "/claims/{claim_id}/evidence",
    response_model=EvidenceList,
    summary="A claim's evidence",
    description="Oldest first; retracted items are marked, purged ones are tombstones.",
    responses=ERRORS,
)
def list_evidence(
    request: Request,
    response: Response,
    claim_id: str,
    principal: Viewer,
    session: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> EvidenceList:
    rows = service.list_evidence(
        session, claim_id=parse_id(claim_id), after_id=int_position(cursor, "evidence"), limit=limit
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor("evidence", rows[-1].id)
    set_link_header(request, response, next_cursor)
    return EvidenceList(items=[service.present(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/evidence/{evidence_id}", response_model=EvidencePublic, summary="Read one item", responses=ERRORS
)
def get_evidence(evidence_id: str, principal: Viewer, session: ReadSessionDep) -> EvidencePublic:
    return service.present(service.get_evidence(session, parse_id(evidence_id, "evidence")))


@router.post(
    "/evidence/{evidence_id}/retract",
    response_model=EvidencePublic,
    summary="Retract an item",
    description="By its author or an editor, with a reason. The item stays on the record, marked retracted.",
    responses=ERRORS,
)
def retract_evidence(
    evidence_id: str, body: ReasonIn, principal: CurrentPrincipal, session: WriteSessionDep
) -> EvidencePublic:
    row = service.retract_evidence(
        session, principal=principal, evidence_id=parse_id(evidence_id, "evidence"), reason=body.reason
    )
    return service.present(row)
