"""A claim's workspace: details, the actions open to me, verdict, evidence, comments, related
claims and the timeline; and the forms that change them.

Which buttons appear is the transition table's answer for this user (``allowed_actions`` as the API
computes it); whether the verdict and evidence forms appear is the services' own checks asked in
advance. The services still decide when the form arrives: a refusal re-renders the page with the
problem next to the form and what was typed still in it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from sqlmodel import col
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims import states
from app.claims.schemas import ClaimUpdate, Confidence, Dimension, Finding, Priority, VerdictIn
from app.claims.states import Action
from app.config import Settings
from app.db import Database, get_database
from app.errors import DomainError, Gone, NotFound, UnsupportedMediaType
from app.evidence import service as evidence_service
from app.evidence.download import blob_response
from app.evidence.schemas import EvidenceIn, Stance, Visibility
from app.evidence.service import StoredFile
from app.evidence.upload import ingest_upload
from app.intake import service as intake_service
from app.publishing.ratings import scale_for
from app.review import service as review_service
from app.web.deps import CSRF_HEADER, Checker, DeskUserDep, PostedForm, Viewer, check_csrf, settings_of
from app.web.render import DeskRoute, Problem, invalid_input, page, problem_of, see_other

log = logging.getLogger("claimdesk.desk")

router = APIRouter(route_class=DeskRoute)

LIST_LIMIT = 200
UPLOAD_FIELDS = ("stance", "dimension", "visibility", "note")
SHORTCUTS = {Action.submit.value: "s", Action.approve.value: "a"}
# Shown inline (a picture, a player); everything else is a download.
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "video/")


@dataclass
class Refusal:
    """A refused form: which one, why, and what was typed into it."""

    at: str
    problem: Problem
    typed: dict[str, str] = field(default_factory=dict)


@dataclass
class ActionButton:
    name: str
    label: str
    needs_reason: bool
    needs_comment: bool
    shortcut: str


def _actions(allowed: list[str]) -> list[ActionButton]:
    out = []
    for name in allowed:
        transition = states.transition_for(Action(name))
        out.append(
            ActionButton(
                name=name,
                label=ACTION_TEXT.get(name, name),
                needs_reason=transition.needs_reason,
                needs_comment=transition.needs_comment,
                shortcut=SHORTCUTS.get(name, ""),
            )
        )
    return out


ACTION_TEXT = {
    "queue": "Queue it",
    "reject": "Reject",
    "restore": "Restore",
    "start": "Start working on it",
    "release": "Release to the queue",
    "submit": "Submit for review",
    "request_changes": "Request changes",
    "approve": "Approve and publish",
    "reopen": "Reopen",
}


DONE_TEXT = {
    "queue": "queued it",
    "reject": "rejected it",
    "restore": "restored it",
    "start": "started work",
    "release": "released it to the queue",
    "submit": "submitted it for review",
    "request_changes": "requested changes",
    "approve": "approved it",
    "reopen": "reopened it",
    "expire_lease": "let the lease run out",
    "recheck": "put it back for a recheck",
}


def _allowed(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except DomainError:
        return False
    return True


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return {}
    rows = session.execute(sa.select(col(User.id), col(User.name)).where(col(User.id).in_(wanted)))
    return {uid: name for uid, name in rows if uid is not None}


def _event_text(event: AuditEvent) -> str:
    data = event.data or {}
    kind = event.type
    if kind == "claim.created":
        return "submitted the claim"
    if kind == "claim.state_changed":
        action = str(data.get("action", ""))
        moved = f"({str(data.get('from', '')).replace('_', ' ')} → {str(data.get('to', '')).replace('_', ' ')})"
        return f"{DONE_TEXT.get(action, 'moved it')} {moved}"
    if kind in ("claim.verdict_set", "claim.verdict_changed"):
        after = data.get("after") or {}
        return f"set the verdict: {str(after.get('rating', '')).replace('_', ' ')}"
    if kind == "evidence.added":
        return f"added a {data.get('kind', 'piece of evidence')} (#{data.get('evidence_id')})"
    if kind == "evidence.retracted":
        return f"retracted evidence #{data.get('evidence_id')}"
    if kind == "evidence.purged":
        return f"purged evidence #{data.get('evidence_id')}"
    if kind == "claim.comment_added":
        return "commented"
    if kind == "claim.approval_added":
        return "approved this round"
    if kind == "claim.published":
        return "published the verdict"
    if kind == "claim.assigned":
        return "assigned the claim"
    if kind == "claim.unassigned":
        return "unassigned a reviewer"
    if kind == "claim.updated":
        changes = data.get("changes") or {}
        return "edited " + ", ".join(sorted(changes)) if changes else "edited the claim"
    if kind == "claim.lease_expired":
        return "the lease ran out: back to the queue"
    if kind == "claim.recheck_due":
        return "a recheck came due"
    if kind == "claim.reopened":
        return "reopened the published verdict"
    if kind == "claim.duplicate_suspected":
        dupes = [f"#{d.get('claim_id')}" for d in data.get("duplicates", []) if isinstance(d, dict)]
        return "may repeat " + ", ".join(dupes) if dupes else "may be a duplicate"
    return kind.replace("_", " ").replace(".", ": ")


def _event_note(event: AuditEvent) -> str:
    data = event.data or {}
    for key in ("reason", "comment"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _workspace(request: Request, user: Viewer, claim_id: str, refusal: Refusal | None = None) -> Response:
    settings = settings_of(request)
    cid = claims_service.parse_id(claim_id)
    principal = user.principal
    with get_database(request).read_session() as session:
        row = claims_service.get_claim(session, cid)
        claim = claims_service.present(session, [row], principal=principal, settings=settings)[0]
        evidence = [
            evidence_service.present(e)
            for e in evidence_service.list_evidence(session, claim_id=cid, after_id=None, limit=LIST_LIMIT)[:LIST_LIMIT]
        ]
        comments = review_service.list_comments(session, claim_id=cid, after_id=None, limit=LIST_LIMIT)[:LIST_LIMIT]
        events = claims_service.list_events(session, claim_id=cid, after_id=None, limit=LIST_LIMIT)
        related = intake_service.related_claims(session, claim_id=cid)
        names = _names(
            session,
            {row.assignee_id, row.verdict_author_id, row.created_by}
            | {e.added_by for e in evidence}
            | {c.author_id for c in comments}
            | {e.actor_id for e in events},
        )
        can_verdict = principal.has(Role.checker) and _allowed(claims_service.check_may_set_verdict, row, principal)
        can_add = _allowed(evidence_service.check_role_to_add, principal) and _allowed(
            evidence_service.check_may_add, row, principal
        )
    scale = scale_for(settings.rating_scale)
    typed = refusal.typed if refusal else {}
    # A refusal shows beside its form; when that form is not on the page for this user (they posted
    # it anyway, or their role changed), it shows at the top instead.
    forms_shown = {
        "verdict": can_verdict,
        "upload": can_add,
        "link": can_add,
        "note": can_add,
        "comment": principal.has(Role.checker),
        "triage": principal.has(Role.editor),
    }
    at_top = refusal is not None and not forms_shown.get(refusal.at, True)
    verdict_values = _verdict_defaults(claim, typed if refusal and refusal.at == "verdict" else None)
    return page(
        request,
        "claim.html",
        title=f"Claim #{cid}",
        active="queue",
        status=refusal.problem.status if refusal else 200,
        problem=refusal.problem if refusal else None,
        refused_at=(refusal.at if refusal and not at_top else ""),
        problem_at_top=at_top,
        typed=typed,
        claim=claim,
        evidence=evidence,
        comments=comments,
        events=events[:LIST_LIMIT],
        more_events=len(events) > LIST_LIMIT,
        event_text=_event_text,
        event_note=_event_note,
        related=related,
        names=names,
        actions=_actions(claim.allowed_actions),
        can_verdict=can_verdict,
        can_add=can_add,
        can_comment=principal.has(Role.checker),
        can_take_next=principal.has(Role.checker),
        scale=list(scale.values()),
        verdict_values=verdict_values,
        confidences=[c.value for c in Confidence],
        priorities=[p.value for p in Priority],
        can_triage=principal.has(Role.editor),
        dimensions=[d.value for d in Dimension],
        findings=[f.value for f in Finding],
        stances=[s.value for s in Stance],
        visibilities=[v.value for v in Visibility],
        inline_types=INLINE_TYPES,
        max_upload_bytes=settings.max_upload_bytes,
    )


def _verdict_defaults(claim: Any, typed: dict[str, str] | None) -> dict[str, str]:
    if typed is not None:
        return typed
    verdict = claim.verdict
    if verdict is None:
        return {}
    values = {
        "rating": verdict.rating or "",
        "summary": verdict.summary or "",
        "confidence": verdict.confidence or "",
        "recheck_at": verdict.recheck_at.strftime("%Y-%m-%dT%H:%M") if verdict.recheck_at else "",
    }
    for dim, finding in (verdict.findings or {}).items():
        values[f"finding_{dim}"] = finding
    return values


@router.get("/claims/{claim_id}")
def claim_page(request: Request, user: Viewer, claim_id: str) -> Response:
    return _workspace(request, user, claim_id)


def _refused(
    request: Request, user: Viewer, claim_id: str, at: str, exc: DomainError, typed: dict[str, str]
) -> Response:
    return _workspace(request, user, claim_id, Refusal(at, problem_of(exc), typed))


# --- workflow actions ------------------------------------------------------------------------


@router.post("/claims/{claim_id}/actions/{action}")
def act(request: Request, user: Viewer, form: PostedForm, claim_id: str, action: str) -> Response:
    version = form.get("version")
    try:
        with get_database(request).transaction() as session:
            outcome = claims_service.perform_action(
                session,
                principal=user.principal,
                claim_id=claims_service.parse_id(claim_id),
                action_name=action,
                reason=form.optional("reason"),
                comment=form.optional("comment"),
                if_match=f'"{version}"' if version else None,
                settings=settings_of(request),
            )
            cid = outcome.claim.id
    except DomainError as exc:
        return _refused(request, user, claim_id, f"action:{action}", exc, form.values())
    if form.get("back") == "review":
        return see_other("/desk/review", ok=action if action in ACTION_TEXT else None)
    return see_other(f"/desk/claims/{cid}", ok=action if action in ACTION_TEXT else None)


# --- triage: priority, deadline, tags, public ------------------------------------------------------


def _triage_changes(form: PostedForm, current: Any) -> dict[str, Any]:
    """Only what the editor changed, so the service judges exactly the fields that move."""
    wanted: dict[str, Any] = {
        "priority": form.get("priority") or current.priority,
        "due_at": form.optional("due_at"),
        "tags": [t for t in (part.strip() for part in form.get("tags").replace(",", " ").split()) if t],
        "public": form.get("public") == "on",
    }
    shown_due = current.due_at.strftime("%Y-%m-%dT%H:%M") if current.due_at else None
    changes: dict[str, Any] = {}
    if wanted["priority"] != current.priority:
        changes["priority"] = wanted["priority"]
    if wanted["due_at"] != shown_due:
        changes["due_at"] = wanted["due_at"]
    if [t.lower() for t in wanted["tags"]] != list(current.tags or []):
        changes["tags"] = wanted["tags"]
    if wanted["public"] != current.public:
        changes["public"] = wanted["public"]
    return changes


@router.post("/claims/{claim_id}/triage")
def triage(request: Request, user: Viewer, form: PostedForm, claim_id: str) -> Response:
    version = form.get("version")
    cid = claims_service.parse_id(claim_id)
    try:
        with get_database(request).read_session() as session:
            changes = _triage_changes(form, claims_service.get_claim(session, cid))
        if not changes:
            return see_other(f"/desk/claims/{cid}", ok="unchanged")
        try:
            data = ClaimUpdate.model_validate(changes)
        except ValidationError as exc:
            raise invalid_input(exc, "The triage is not valid") from None
        with get_database(request).transaction() as session:
            claims_service.update_claim(
                session,
                principal=user.principal,
                claim_id=cid,
                data=data,
                if_match=f'"{version}"' if version else None,
                settings=settings_of(request),
            )
    except DomainError as exc:
        return _refused(request, user, claim_id, "triage", exc, form.values())
    return see_other(f"/desk/claims/{cid}", ok="edited")


# --- the verdict -------------------------------------------------------------------------------


def _verdict_input(form: PostedForm) -> VerdictIn:
    findings = {dim.value: form.get(f"finding_{dim.value}") for dim in Dimension if form.get(f"finding_{dim.value}")}
    raw: dict[str, Any] = {
        "rating": form.get("rating"),
        "summary": form.get("summary"),
        "confidence": form.optional("confidence"),
        "recheck_at": form.optional("recheck_at"),
        "findings": findings or None,
    }
    try:
        return VerdictIn.model_validate(raw)
    except ValidationError as exc:
        raise invalid_input(exc, "The verdict is not complete") from None


@router.post("/claims/{claim_id}/verdict")
def set_verdict(request: Request, user: Checker, form: PostedForm, claim_id: str) -> Response:
    version = form.get("version")
    try:
        data = _verdict_input(form)
        with get_database(request).transaction() as session:
            claim = claims_service.set_verdict(
                session,
                principal=user.principal,
                claim_id=claims_service.parse_id(claim_id),
                data=data,
                if_match=f'"{version}"' if version else None,
                settings=settings_of(request),
            )
            cid = claim.id
    except DomainError as exc:
        return _refused(request, user, claim_id, "verdict", exc, form.values())
    return see_other(f"/desk/claims/{cid}", ok="verdict")


# --- evidence: links, notes, files ---------------------------------------------------------------


def _evidence_input(kind: str, values: Mapping[str, str | None]) -> EvidenceIn:
    try:
        return EvidenceIn.model_validate({"kind": kind, **{k: v for k, v in values.items() if v}})
    except ValidationError as exc:
        raise invalid_input(exc, f"The {kind} is not complete") from None


def _add(request: Request, user: Viewer, claim_id: str, data: EvidenceIn) -> int:
    with get_database(request).transaction() as session:
        row = evidence_service.add_evidence(
            session,
            principal=user.principal,
            claim_id=claims_service.parse_id(claim_id),
            data=data,
            settings=settings_of(request),
        )
        assert row.claim_id is not None
        return row.claim_id


@router.post("/claims/{claim_id}/evidence/link")
def add_link(request: Request, user: Viewer, form: PostedForm, claim_id: str) -> Response:
    try:
        data = _evidence_input(
            "link",
            {
                "url": form.get("url"),
                "archived_url": form.optional("archived_url"),
                "note": form.optional("note"),
                "stance": form.optional("stance"),
                "dimension": form.optional("dimension"),
                "visibility": form.optional("visibility"),
            },
        )
        cid = _add(request, user, claim_id, data)
    except DomainError as exc:
        return _refused(request, user, claim_id, "link", exc, form.values())
    return see_other(f"/desk/claims/{cid}#evidence", ok="evidence")


@router.post("/claims/{claim_id}/evidence/note")
def add_note(request: Request, user: Viewer, form: PostedForm, claim_id: str) -> Response:
    try:
        data = _evidence_input(
            "note",
            {
                "note": form.get("note"),
                "stance": form.optional("stance"),
                "dimension": form.optional("dimension"),
                "visibility": form.optional("visibility"),
            },
        )
        cid = _add(request, user, claim_id, data)
    except DomainError as exc:
        return _refused(request, user, claim_id, "note", exc, form.values())
    return see_other(f"/desk/claims/{cid}#evidence", ok="evidence")


def _precheck(database: Database, principal: Principal, claim_id: int) -> None:
    evidence_service.check_role_to_add(principal)
    with database.read_session() as session:
        evidence_service.check_may_add(claims_service.get_claim(session, claim_id), principal)


def _record_file(
    database: Database,
    principal: Principal,
    claim_id: int,
    data: EvidenceIn,
    stored: StoredFile,
    store: Any,
    settings: Settings,
) -> int:
    with database.transaction() as session:
        row = evidence_service.add_evidence(
            session, principal=principal, claim_id=claim_id, data=data, settings=settings, stored=stored, store=store
        )
        assert row.id is not None
        return row.id


@router.post("/claims/{claim_id}/evidence/file")
async def upload_file(request: Request, user: DeskUserDep, claim_id: str) -> Response:
    """Multipart, streamed to storage as it arrives (never buffered). The CSRF token comes in the
    X-CSRF-Token header (or ``?csrf=`` for a browser without script); answers JSON to script."""
    wants_json = "application/json" in request.headers.get("accept", "")
    settings = settings_of(request)
    database = get_database(request)
    fields: dict[str, str] = {}
    try:
        check_csrf(request, user, request.headers.get(CSRF_HEADER) or request.query_params.get("csrf"))
        cid = claims_service.parse_id(claim_id)
        # Role, existence, state and object rule before a byte of the file is read.
        await run_in_threadpool(_precheck, database, user.principal, cid)
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise UnsupportedMediaType("Send the file as multipart/form-data.")
        try:
            upload = await ingest_upload(request, request.app.state.blob_store, max_bytes=settings.max_upload_bytes)
        except ClientDisconnect:
            log.info("desk upload to claim %s abandoned by the browser", cid)
            return Response(status_code=499)
        fields = {k: v for k, v in upload.fields.items() if k in UPLOAD_FIELDS}
        data = _evidence_input("note", fields)
        stored = StoredFile(upload.blob.sha256, upload.blob.size, upload.media_type, upload.filename)
        await run_in_threadpool(
            _record_file, database, user.principal, cid, data, stored, request.app.state.blob_store, settings
        )
    except DomainError as exc:
        if wants_json:
            return JSONResponse(exc.to_problem(instance=request.url.path), status_code=exc.status, headers=exc.headers)
        return await run_in_threadpool(_refused, request, user, claim_id, "upload", exc, fields)
    target = f"/desk/claims/{cid}?ok=evidence#evidence"
    if wants_json:
        return JSONResponse({"redirect": target}, status_code=201)
    return see_other(target)


def _load_file(database: Database, evidence_id: int) -> Any:
    with database.read_session() as session:
        return evidence_service.get_evidence(session, evidence_id)


@router.get("/evidence/{evidence_id}/file")
async def evidence_file(request: Request, user: Viewer, evidence_id: str) -> Response:
    """The file, for the signed-in desk: pictures and video inline (they are sniffed, never markup)."""
    row = await run_in_threadpool(_load_file, get_database(request), claims_service.parse_id(evidence_id, "evidence"))
    if row.purged_at is not None:
        raise Gone("This evidence was purged; only its tombstone remains.")
    if row.kind != "file" or row.sha256 is None or row.media_type is None:
        raise NotFound(f"Evidence {row.id} has no file.")
    inline = row.media_type.startswith(INLINE_TYPES)
    return await blob_response(
        request,
        request.app.state.blob_store,
        sha256=row.sha256,
        media_type=row.media_type,
        filename=row.filename,
        size=row.size,
        disposition="inline" if inline else "attachment",
        cache_control="private, max-age=3600",
    )


@router.post("/evidence/{evidence_id}/retract")
def retract(request: Request, user: Viewer, form: PostedForm, evidence_id: str) -> Response:
    eid = claims_service.parse_id(evidence_id, "evidence")
    with get_database(request).read_session() as session:
        claim_id = evidence_service.get_evidence(session, eid).claim_id
    try:
        with get_database(request).transaction() as session:
            evidence_service.retract_evidence(
                session, principal=user.principal, evidence_id=eid, reason=form.get("reason")
            )
    except DomainError as exc:
        return _refused(request, user, str(claim_id), f"retract:{eid}", exc, form.values())
    return see_other(f"/desk/claims/{claim_id}#evidence", ok="retracted")


# --- comments ----------------------------------------------------------------------------------


@router.post("/claims/{claim_id}/comments")
def add_comment(request: Request, user: Viewer, form: PostedForm, claim_id: str) -> Response:
    try:
        with get_database(request).transaction() as session:
            comment = review_service.add_comment(
                session,
                principal=user.principal,
                claim_id=claims_service.parse_id(claim_id),
                body=form.get("body"),
                settings=settings_of(request),
            )
            cid = comment.claim_id
    except DomainError as exc:
        return _refused(request, user, claim_id, "comment", exc, form.values())
    return see_other(f"/desk/claims/{cid}#comments", ok="comment")
