"""Evidence routes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from app import idempotency
from app.auth.deps import Admin, Contributor, CurrentPrincipal, Viewer
from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims.schemas import Dimension
from app.claims.service import parse_id
from app.config import Settings
from app.db import CommitOnReturn, Database, ReadSessionDep, WriteSessionDep, get_database
from app.deps import IdempotencyKey, SettingsDep
from app.errors import Gone, NotFound, Unprocessable, UnsupportedMediaType, problem_response
from app.evidence import service
from app.evidence.download import FILE_RESPONSES, blob_response
from app.evidence.models import Evidence
from app.evidence.schemas import EvidenceIn, EvidenceList, EvidencePublic, ReasonIn, Stance, Visibility
from app.evidence.service import StoredFile
from app.evidence.storage import BlobNotFound, BlobStore
from app.evidence.upload import ingest_upload
from app.pagination import CursorQuery, LimitQuery, finish_page, int_position

log = logging.getLogger("claimdesk.evidence")

router = APIRouter(prefix="/api/v1", tags=["evidence"], route_class=CommitOnReturn)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_response("No valid API key"),
    403: problem_response("The role or object rule does not admit this"),
    404: problem_response("Unknown claim or evidence"),
    409: problem_response("Claim closed, already retracted or purged"),
    422: problem_response("Invalid input"),
}


UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/EvidenceIn"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "stance": {"type": "string", "enum": [s.value for s in Stance]},
                        "dimension": {"type": "string", "enum": [d.value for d in Dimension]},
                        "visibility": {"type": "string", "enum": [v.value for v in Visibility]},
                        "note": {"type": "string", "maxLength": 20000},
                    },
                }
            },
        },
    }
}
FORM_FIELDS = ("stance", "dimension", "visibility", "note")


@router.post(
    "/claims/{claim_id}/evidence",
    status_code=status.HTTP_201_CREATED,
    response_model=EvidencePublic,
    summary="Add evidence to a claim",
    description=(
        "A file as multipart/form-data (the part `file`, with optional stance, dimension, visibility and "
        "note fields), or a link or note as JSON. Files are streamed to storage while hashed (SHA-256); "
        "the media type is sniffed from the bytes. Over the upload limit: 413 (checked before type); a "
        "type not on the allow-list: 415; empty: 422. Checkers and above add evidence while a claim is "
        "being worked; a contributor may add to a claim they submitted while it is still submitted."
    ),
    responses={
        **ERRORS,
        413: problem_response("Over the upload or JSON size limit"),
        415: problem_response("Not multipart or JSON, or a file type not allowed"),
        503: problem_response("The same bytes were purged while the file arrived; nothing recorded, send it again"),
    },
    openapi_extra=UPLOAD_OPENAPI,
)
async def add_evidence(
    request: Request,
    claim_id: str,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    database = get_database(request)
    cid = parse_id(claim_id)
    ctype = request.headers.get("content-type", "").lower()
    stored: StoredFile | None = None
    if ctype.startswith("application/json") and idempotency_key:
        # A retry of a JSON post is answered from the first response, even if the claim has moved on
        # since (the first request already passed the rules). JSON bodies are small (size-limited).
        service.check_role_to_add(principal)
        raw = await request.body()
        try:
            fp = idempotency.fingerprint(
                f"POST /claims/{cid}/evidence", EvidenceIn.model_validate_json(raw).model_dump(mode="json")
            )
        except ValidationError:
            fp = ""
        replay = await run_in_threadpool(_find_replay, database, principal, idempotency_key, fp) if fp else None
        if replay is not None:
            headers = {"Idempotent-Replayed": "true", **({"Location": replay.location} if replay.location else {})}
            return JSONResponse(replay.body, status_code=replay.status_code, headers=headers)
    # Role, existence, state and object rule first, before reading a byte of an upload.
    await run_in_threadpool(_precheck, database, principal, cid)
    if ctype.startswith("multipart/"):
        try:
            upload = await ingest_upload(request, request.app.state.blob_store, max_bytes=settings.max_upload_bytes)
        except ClientDisconnect:
            # The writer was aborted; nothing was stored. Nobody is listening for an answer.
            log.info("upload to claim %s abandoned by the client", cid)
            return Response(status_code=499)
        data = _form_to_input(upload.fields)
        stored = StoredFile(upload.blob.sha256, upload.blob.size, upload.media_type, upload.filename)
        fp_body: Any = {"file": stored.sha256, "name": stored.filename, **upload.fields}
    elif ctype.startswith("application/json") or not ctype:
        raw = await request.body()
        try:
            data = EvidenceIn.model_validate_json(raw or b"null")
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from exc
        fp_body = data.model_dump(mode="json")
    else:
        raise UnsupportedMediaType(
            "Send a file as multipart/form-data, or a link or note as application/json.",
            accepted=["multipart/form-data", "application/json"],
        )
    store: BlobStore = request.app.state.blob_store
    status_code, body, headers = await run_in_threadpool(
        _store_row, database, store, principal, cid, data, stored, settings, idempotency_key, fp_body
    )
    return JSONResponse(body, status_code=status_code, headers=headers)


def _find_replay(database: Database, principal: Principal, key: str, fp: str) -> idempotency.Replay | None:
    with database.read_session() as session:
        return idempotency.find(session, api_key_id=principal.api_key_id, key=key, fp=fp)


def _precheck(database: Database, principal: Principal, claim_id: int) -> None:
    service.check_role_to_add(principal)
    with database.read_session() as session:
        service.check_may_add(claims_service.get_claim(session, claim_id), principal)


def _form_to_input(fields: dict[str, str]) -> EvidenceIn:
    unknown = sorted(set(fields) - set(FORM_FIELDS))
    if unknown:
        raise Unprocessable(
            f"Unknown form fields: {', '.join(unknown)}.",
            errors=[{"loc": ["body", name], "msg": "extra fields not permitted"} for name in unknown],
        )
    try:
        return EvidenceIn.model_validate({"kind": "note", **{k: v for k, v in fields.items() if v != ""}})
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


def _store_row(
    database: Database,
    store: BlobStore,
    principal: Principal,
    claim_id: int,
    data: EvidenceIn,
    stored: StoredFile | None,
    settings: Settings,
    idempotency_key: str | None,
    fp_body: Any,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    fp = idempotency.fingerprint(f"POST /claims/{claim_id}/evidence", fp_body)
    with database.transaction() as session:
        replay = idempotency.check(session, api_key_id=principal.api_key_id, key=idempotency_key, fp=fp)
        if replay is not None:
            headers = {"Idempotent-Replayed": "true", **({"Location": replay.location} if replay.location else {})}
            return replay.status_code, replay.body, headers
        row = service.add_evidence(
            session, principal=principal, claim_id=claim_id, data=data, settings=settings, stored=stored, store=store
        )
        body = service.present(row).model_dump(mode="json")
        location = f"/api/v1/evidence/{row.id}"
        idempotency.remember(
            session,
            api_key_id=principal.api_key_id,
            key=idempotency_key,
            fp=fp,
            status_code=201,
            body=body,
            location=location,
        )
    return 201, body, {"Location": location}


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
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="evidence")
    return EvidenceList(items=[service.present(r) for r in rows], next_cursor=next_cursor)


@router.get("/evidence/{evidence_id}", response_model=EvidencePublic, summary="Read one item", responses=ERRORS)
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
    evidence_id: str, body: ReasonIn, principal: Contributor, session: WriteSessionDep
) -> EvidencePublic:
    row = service.retract_evidence(
        session, principal=principal, evidence_id=parse_id(evidence_id, "evidence"), reason=body.reason
    )
    return service.present(row)


@router.get(
    "/evidence/{evidence_id}/content",
    summary="Download the file",
    description=(
        "The stored bytes, streamed, with `ETag` (the SHA-256), `Content-Disposition: attachment` and "
        "Range support (206, 416) so video can seek. A purged item is 410."
    ),
    responses={
        **ERRORS,
        **FILE_RESPONSES,
        410: problem_response("Purged"),
    },
    response_class=Response,
)
async def download_evidence(request: Request, evidence_id: str, principal: Viewer) -> Response:
    database = get_database(request)
    row = await run_in_threadpool(_load, database, parse_id(evidence_id, "evidence"))
    if row.purged_at is not None:
        raise Gone(
            "This evidence was purged; only its tombstone remains.",
            sha256=row.sha256,
            size=row.size,
            purged_at=row.purged_at.isoformat(),
            purge_reason=row.purge_reason,
        )
    if row.kind != "file" or row.sha256 is None or row.media_type is None:
        raise NotFound(f"Evidence {row.id} is a {row.kind}; it has no file to download.")
    try:
        return await blob_response(
            request,
            request.app.state.blob_store,
            sha256=row.sha256,
            media_type=row.media_type,
            filename=row.filename,
            size=row.size,
        )
    except BlobNotFound:
        log.error("evidence %s: bytes %s missing from the store", row.id, row.sha256)
        raise


# HEAD answers like GET without the body (players probe size and ranges); kept out of the schema so
# the operation has one id.
router.add_api_route("/evidence/{evidence_id}/content", download_evidence, methods=["HEAD"], include_in_schema=False)


def _load(database: Database, evidence_id: int) -> Evidence:
    with database.read_session() as session:
        return service.get_evidence(session, evidence_id)


@router.post(
    "/evidence/{evidence_id}/purge",
    response_model=EvidencePublic,
    summary="Purge an item (admin; law and safety)",
    description=(
        "Destroys the file's bytes (in every storage adapter) and the note, url and filename, and keeps a "
        "tombstone: hash, size, who, when and why. evidence.purged goes on the claim's timeline."
    ),
    responses={**ERRORS, 403: problem_response("Admins only")},
)
def purge_evidence(request: Request, evidence_id: str, body: ReasonIn, principal: Admin) -> EvidencePublic:
    database = get_database(request)
    with database.transaction() as session:
        row = service.purge_evidence(
            session, principal=principal, evidence_id=parse_id(evidence_id, "evidence"), reason=body.reason
        )
        out = service.present(row)
    # The tombstone is committed; now the bytes go, unless another live row shares them. A crash in
    # between leaves bytes that `claimdesk evidence verify` finds and removes.
    if row.sha256:
        with database.transaction() as session:
            service.delete_unreferenced_bytes(session, request.app.state.blob_store, row.sha256)
    return out
