"""Claims: creation, edits, the workflow actions, verdicts, listing and the timeline.

Every function takes the session first and keyword arguments after, flushes but never commits,
raises DomainError subclasses, and writes its audit and outbox events through ``audit.record``
in the same transaction as the change.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.orm import Session
from sqlmodel import col

from app.audit import service as audit
from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import states
from app.claims.models import NO_DEADLINE, Claim, ClaimApproval, ClaimCorrection, ClaimReviewer, ClaimTag, Comment
from app.claims.schemas import (
    PRIORITY_RANK,
    ClaimCreate,
    ClaimPublic,
    ClaimUpdate,
    Priority,
    VerdictIn,
)
from app.claims.states import Action, State
from app.clock import clock
from app.config import Settings
from app.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unprocessable
from app.evidence.models import Evidence
from app.intake import related
from app.publishing.ratings import scale_for
from app.validation import MAX_ID

CONTENT_FIELDS = ("text", "claimant", "appearance_url", "appeared_at", "outlet", "context", "language", "figure")
TRIAGE_FIELDS = ("tags", "priority", "due_at", "public")
# What a reviewer approves, and what was published, must be what stays: content edits wait.
FROZEN_STATES = (State.in_review, State.published, State.rejected)
_CLAIM_TABLE: sa.Table = Claim.__table__  # type: ignore[attr-defined]
MENTION = re.compile(r"(?<![\w.])@([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def subject(claim_id: int) -> str:
    return f"claim:{claim_id}"


def parse_id(raw: str | int, what: str = "claim") -> int:
    """Ids in paths are opaque to clients: anything that is not one of ours is a 404."""
    if isinstance(raw, int):
        return raw
    if raw.isascii() and raw.isdigit() and len(raw) <= 10:
        value = int(raw)
        if 0 < value <= MAX_ID:
            return value
    raise NotFound(f"No {what} with id {raw!r}.")


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def get_claim(session: Session, claim_id: int) -> Claim:
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFound(f"No claim with id {claim_id}.")
    return claim


def claim_row(session: Session | sa.Connection, claim_id: int) -> sa.Row[Any]:
    """The claim as a plain row, for reading and presenting only: a Core statement built once, with
    none of the ORM's identity-map and loading work. The row also carries its reviewers' ids
    (``reviewer_ids``), read by the same statement, so :func:`present` needs no second one."""
    conn = _connection(session)
    row = conn.execute(_claim_with_reviewers(conn.dialect.name), {"id": claim_id}).first()
    if row is None:
        raise NotFound(f"No claim with id {claim_id}.")
    return row


@functools.cache
def _claim_with_reviewers(dialect: str) -> sa.Select[Any]:
    reviewers = _REVIEWER_TABLE
    ids: Any = (
        sa.func.array_agg(reviewers.c.user_id)  # NULL when there are none
        if dialect == "postgresql"
        else sa.type_coerce(sa.func.json_group_array(reviewers.c.user_id), sa.JSON)  # '[]' when none
    )
    found = sa.select(ids).where(reviewers.c.claim_id == _CLAIM_TABLE.c.id).scalar_subquery()
    return sa.select(_CLAIM_TABLE, found.label(_REVIEWER_IDS)).where(_CLAIM_TABLE.c.id == sa.bindparam("id"))


def _connection(session: Session | sa.Connection) -> sa.Connection:
    """Core statements run on a bare connection (point reads) or on the session's own."""
    return session if isinstance(session, sa.Connection) else session.connection()


def lock_claim(session: Session, claim_id: int) -> Claim:
    """The claim, row-locked for the rest of the transaction on PostgreSQL."""
    claim = session.get(Claim, claim_id, with_for_update=_is_postgres(session), populate_existing=True)
    if claim is None:
        raise NotFound(f"No claim with id {claim_id}.")
    return claim


def check_if_match(claim: Claim, if_match: str | None) -> None:
    """``If-Match: "<version>"`` (or a list, or *). A stale one is 412; none means last writer wins."""
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",") if t.strip()]
    if "*" in tags:
        return
    wanted = {t.removeprefix("W/").strip('"') for t in tags}
    if str(claim.version) not in wanted:
        raise PreconditionFailed(
            f"The claim changed since you read it (now version {claim.version}); read it again and retry.",
            current_version=claim.version,
        )


def compact(claim: Claim | sa.Row[Any]) -> dict[str, Any]:
    """The small snapshot that travels in outbox events and webhooks."""
    verdict = None
    if claim.verdict_rating:
        verdict = {"rating": claim.verdict_rating, "summary": claim.verdict_summary}
    return {
        "id": claim.id,
        "text": claim.text,
        "claimant": claim.claimant,
        "state": claim.state,
        "verdict": verdict,
        "priority": claim.priority,
        "public": claim.public,
        "version": claim.version,
    }


def emit_claim_event(
    session: Session,
    claim: Claim | sa.Row[Any],
    type_: str,
    actor: audit.Actor,
    data: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> audit.RecordedEvent:
    assert claim.id is not None
    payload = dict(data or {})
    return audit.record(
        session,
        type_=type_,
        actor=actor,
        subject=subject(claim.id),
        claim_id=claim.id,
        data=payload,
        outbox_payload={**payload, "claim": compact(claim)},
        at=at,
    )


def _touch(claim: Claim, actor: audit.Actor, now: datetime) -> None:
    claim.version += 1
    claim.updated_at = now
    claim.updated_by = actor.user_id


def _renew_lease(claim: Claim, principal: Principal, settings: Settings, now: datetime) -> None:
    """The assignee's activity keeps their lease alive."""
    if claim.state == State.in_progress and claim.assignee_id == principal.user_id:
        claim.lease_expires_at = now + timedelta(seconds=settings.lease_seconds)


def _set_tags(session: Session, claim: Claim, tags: list[str]) -> None:
    unique = list(dict.fromkeys(tags))
    claim.tags = unique
    assert claim.id is not None
    session.execute(sa.delete(ClaimTag).where(col(ClaimTag.claim_id) == claim.id))
    if unique:
        session.execute(sa.insert(ClaimTag), [{"claim_id": claim.id, "tag": t} for t in unique])


# --- creation -------------------------------------------------------------------------------


# Core, with every column returned: a new claim is written and presented on every POST, and the
# ORM's unit of work (entity construction, flush, identity map) cost more than the insert itself.
_INSERT_CLAIM = _CLAIM_TABLE.insert().returning(*_CLAIM_TABLE.c)
_INSERT_TAG = ClaimTag.__table__.insert()  # type: ignore[attr-defined]


def create_claim(
    session: Session,
    *,
    principal: Principal,
    data: ClaimCreate,
    settings: Settings,
    source: dict[str, Any] | None = None,
) -> sa.Row[Any]:
    """The new claim as a row (its columns as stored). ``source`` ({article_id, start, end}) is set by
    intake when a claim is taken from an article."""
    related.prepare(data.text)  # CPU work done before the first statement takes the write lock
    now = clock.now()
    tags = list(dict.fromkeys(data.tags))
    session.flush()  # whatever the caller added goes in first, in the order it was added
    claim = (
        session.connection()
        .execute(
            _INSERT_CLAIM,
            {
                "text": data.text,
                "claimant": data.claimant,
                "appearance_url": data.appearance_url,
                "appeared_at": data.appeared_at,
                "outlet": data.outlet,
                "context": data.context,
                "language": data.language,
                "tags": tags,
                "priority": data.priority.value,
                "priority_rank": PRIORITY_RANK[data.priority],
                "due_at": data.due_at,
                "due_sort": data.due_at or NO_DEADLINE,
                "public": settings.public_by_default if data.public is None else data.public,
                "figure": data.figure.model_dump(mode="json") if data.figure else None,
                "source": source,
                # Written as the ORM writes a None in a JSON column (the JSON text null), so rows
                # look the same whichever path made them.
                "verdict_findings": None,
                "published_verdict": None,
                "state": states.initial_state().value,
                "review_round": 0,
                "version": 1,
                "created_by": principal.user_id,
                "created_at": now,
                "updated_by": principal.user_id,
                "updated_at": now,
            },
        )
        .one()
    )
    if tags:
        session.connection().execute(_INSERT_TAG, [{"claim_id": claim.id, "tag": t} for t in tags])
    created: dict[str, Any] = {"text": claim.text, "claimant": claim.claimant, "priority": claim.priority, "tags": tags}
    if claim.figure is not None:
        created["figure"] = claim.figure
    if source is not None:
        created["source"] = source
    emit_claim_event(session, claim, "claim.created", principal.actor, created, at=now)
    # Marked, never hidden or merged: the desk decides what a likely duplicate is.
    duplicates = related.register_claim(session, claim)
    if duplicates:
        emit_claim_event(
            session,
            claim,
            "claim.duplicate_suspected",
            principal.actor,
            {"duplicates": [{"claim_id": d.claim_id, "similarity": d.score} for d in duplicates]},
            at=now,
        )
    return claim


# --- edits -----------------------------------------------------------------------------------


def _may_edit(claim: Claim, principal: Principal, fields: set[str]) -> None:
    """Editors edit any claim; the assignee the claim they are working (while in_progress, and not
    whether it goes public: that is an editor's call); contributors their own claims while submitted."""
    if principal.has(Role.editor):
        return
    if principal.role == Role.contributor:
        if claim.created_by != principal.user_id or claim.state != State.submitted:
            raise Forbidden("Contributors may edit only their own claims, and only while submitted.")
        return
    if principal.has(Role.checker):
        if claim.assignee_id != principal.user_id or claim.state != State.in_progress:
            raise Forbidden("Only the claim's assignee, while working it, or an editor may edit it.")
        if "public" in fields:
            raise Forbidden("Whether a check is public is an editor's decision.")
        return
    raise Forbidden("Your role cannot edit claims.")


def update_claim(
    session: Session,
    *,
    principal: Principal,
    claim_id: int,
    data: ClaimUpdate,
    if_match: str | None,
    settings: Settings,
) -> Claim:
    given = data.model_dump(exclude_unset=True)
    claim = lock_claim(session, claim_id)
    check_if_match(claim, if_match)
    if claim.state in FROZEN_STATES and any(f in given for f in CONTENT_FIELDS):
        raise Conflict(
            f"The claim is {claim.state}: its content is frozen "
            "(in review: request changes; published: reopen; rejected: restore).",
            allowed_actions=states.user_actions_from(State(claim.state)),
        )
    _may_edit(claim, principal, set(given))
    if not given:
        return claim
    if "text" in given and given["text"] is None:
        raise Unprocessable("text cannot be removed.", errors=[{"loc": ["body", "text"], "msg": "required"}])
    changes: dict[str, list[Any]] = {}
    for name, value in given.items():
        if name == "priority":
            if value is None:
                raise Unprocessable("priority cannot be null.", errors=[{"loc": ["body", "priority"]}])
            value = Priority(value).value
        if name == "public" and value is None:
            raise Unprocessable("public cannot be null.", errors=[{"loc": ["body", "public"]}])
        if name == "tags":
            value = list(dict.fromkeys(value or []))
        if name == "figure":
            value = data.figure.model_dump(mode="json") if data.figure else None
        before = getattr(claim, name)
        if before == value:
            continue
        changes[name] = [_plain(before), _plain(value)]
        if name == "tags":
            _set_tags(session, claim, value)
        else:
            setattr(claim, name, value)
        if name == "priority":
            claim.priority_rank = PRIORITY_RANK[Priority(value)]
        if name == "due_at":
            claim.due_sort = value or NO_DEADLINE
    if not changes:
        return claim
    now = clock.now()
    _touch(claim, principal.actor, now)
    _renew_lease(claim, principal, settings, now)
    session.flush()
    if "text" in changes:
        related.index_claim(session, claim)
    emit_claim_event(session, claim, "claim.updated", principal.actor, {"changes": changes}, at=now)
    return claim


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# --- verdicts --------------------------------------------------------------------------------


def set_verdict(
    session: Session,
    *,
    principal: Principal,
    claim_id: int,
    data: VerdictIn,
    if_match: str | None,
    settings: Settings,
) -> Claim:
    if not principal.has(Role.checker):
        raise Forbidden("Setting a verdict needs the checker role or above.")
    claim = lock_claim(session, claim_id)
    check_if_match(claim, if_match)
    check_may_set_verdict(claim, principal)
    scale = scale_for(settings.rating_scale)
    rating = scale.get(data.rating)
    if rating is None:
        raise Unprocessable(
            f"Unknown rating {data.rating!r}.",
            errors=[{"loc": ["body", "rating"], "msg": "not on the rating scale", "allowed": list(scale)}],
        )
    if data.recheck_at is not None and not rating.recheckable:
        recheckable = [r.id for r in scale.values() if r.recheckable]
        raise Unprocessable(
            f"recheck_at is only for ratings {', '.join(recheckable)}.",
            errors=[{"loc": ["body", "recheck_at"], "msg": "not allowed for this rating"}],
        )
    now = clock.now()
    if data.recheck_at is not None and data.recheck_at <= now:
        raise Unprocessable("recheck_at must be in the future.", errors=[{"loc": ["body", "recheck_at"]}])
    before = _verdict_dict(claim)
    claim.verdict_rating = rating.id
    claim.verdict_summary = data.summary
    claim.verdict_confidence = data.confidence.value if data.confidence else None
    claim.verdict_recheck_at = data.recheck_at
    claim.verdict_findings = {k.value: v.value for k, v in data.findings.items()} if data.findings else None
    claim.verdict_author_id = principal.user_id
    claim.verdict_set_at = now
    _touch(claim, principal.actor, now)
    _renew_lease(claim, principal, settings, now)
    session.flush()
    emit_claim_event(
        session,
        claim,
        "claim.verdict_set",
        principal.actor,
        {"before": before, "after": _verdict_dict(claim)},
        at=now,
    )
    return claim


def check_may_set_verdict(claim: Claim, principal: Principal) -> None:
    """State, then object rule, for a caller whose role was already checked (the desk asks it too,
    to decide whether to offer the verdict form)."""
    if claim.state == State.in_review:
        raise Conflict(
            "The verdict cannot change while in review: request changes first.",
            allowed_actions=states.user_actions_from(State.in_review),
        )
    if claim.state != State.in_progress:
        raise Conflict(
            f"A verdict is set while the claim is in_progress; it is {claim.state}.",
            allowed_actions=states.user_actions_from(State(claim.state)),
        )
    if not principal.has(Role.editor) and claim.assignee_id != principal.user_id:
        raise Forbidden("Only the claim's assignee or an editor may set its verdict.")


def _verdict_dict(claim: Claim) -> dict[str, Any] | None:
    if not claim.verdict_rating:
        return None
    return {
        "rating": claim.verdict_rating,
        "summary": claim.verdict_summary,
        "confidence": claim.verdict_confidence,
        "recheck_at": _plain(claim.verdict_recheck_at),
        "findings": claim.verdict_findings,
        "author_id": claim.verdict_author_id,
    }


# --- workflow actions ------------------------------------------------------------------------


def _live_evidence_count(session: Session, claim_id: int) -> int:
    return int(
        session.execute(
            sa.select(sa.func.count())
            .select_from(Evidence)
            .where(
                col(Evidence.claim_id) == claim_id,
                col(Evidence.retracted_at).is_(None),
                col(Evidence.purged_at).is_(None),
            )
        ).scalar_one()
    )


def _approvals(session: Session, claim: Claim) -> list[ClaimApproval]:
    return list(
        session.execute(
            sa.select(ClaimApproval)
            .where(col(ClaimApproval.claim_id) == claim.id, col(ClaimApproval.review_round) == claim.review_round)
            .order_by(col(ClaimApproval.id))
        ).scalars()
    )


@dataclass
class ActionOutcome:
    claim: Claim
    changed_state: bool
    approvals: list[ClaimApproval] = field(default_factory=list)


def check_action_role(principal: Principal, action_name: str) -> Action:
    """The action exists (404) and the caller's role admits it (403): the first checks of an action,
    which the API makes before it reads the body."""
    action = states.parse_action(action_name)
    if action is None:
        raise NotFound(
            f"No action {action_name!r}.",
            known_actions=[a.value for a, t in states.TRANSITIONS.items() if t.role is not None],
        )
    transition = states.transition_for(action)
    if transition.role is None:
        raise Forbidden(f"{action.value} is performed by the system only.")
    if not principal.has(transition.role):
        raise Forbidden(f"{action.value} needs the {transition.role.value} role or above.")
    return action


def perform_action(
    session: Session,
    *,
    principal: Principal,
    claim_id: int,
    action_name: str,
    reason: str | None = None,
    comment: str | None = None,
    if_match: str | None = None,
    settings: Settings,
) -> ActionOutcome:
    """A person's action on a claim, checked in the documented order:
    role (403) -> claim exists (404) -> allowed from this state (409) -> object rule (403)
    -> precondition (409) -> reason or comment present (422)."""
    action = check_action_role(principal, action_name)
    transition = states.transition_for(action)
    claim = lock_claim(session, claim_id)
    check_if_match(claim, if_match)
    states.check_allowed(State(claim.state), action)
    is_assignee = claim.assignee_id is not None and claim.assignee_id == principal.user_id
    if not states.may_act(transition, role=principal.role, is_assignee=is_assignee):
        raise Forbidden(f"Only the claim's assignee may {action.value} it.")
    if action == Action.approve and claim.verdict_author_id == principal.user_id:
        raise Forbidden("Four eyes: the verdict's author cannot approve it; another editor must.")
    if action == Action.submit:
        missing = []
        if not claim.verdict_rating:
            missing.append("verdict")
        assert claim.id is not None
        if _live_evidence_count(session, claim.id) == 0:
            missing.append("evidence")
        if missing:
            raise Conflict(
                f"Cannot submit yet: {' and '.join(missing)} missing.",
                missing=missing,
            )
    if action == Action.approve and any(a.editor_id == principal.user_id for a in _approvals(session, claim)):
        raise Conflict("You have already approved this round.", missing=["approval from another editor"])
    reason = (reason or "").strip() or None
    comment = (comment or "").strip() or None
    if transition.needs_reason and not reason:
        raise Unprocessable(f"{action.value} needs a reason.", errors=[{"loc": ["body", "reason"], "msg": "required"}])
    if transition.needs_comment and not comment:
        raise Unprocessable(
            f"{action.value} needs a comment.", errors=[{"loc": ["body", "comment"], "msg": "required"}]
        )
    return _carry_out(session, claim, action, principal=principal, reason=reason, comment=comment, settings=settings)


def _carry_out(
    session: Session,
    claim: Claim,
    action: Action,
    *,
    principal: Principal | None,
    reason: str | None,
    comment: str | None,
    settings: Settings,
    at: datetime | None = None,
    assignee_id: int | None = None,
) -> ActionOutcome:
    now = at or clock.now()
    actor = principal.actor if principal else audit.Actor.system()
    assert claim.id is not None

    if action == Action.approve:
        assert principal is not None
        session.add(
            ClaimApproval(
                claim_id=claim.id,
                review_round=claim.review_round,
                editor_id=principal.user_id,
                created_at=now,
            )
        )
        session.flush()
        approvals = _approvals(session, claim)
        _touch(claim, actor, now)
        emit_claim_event(
            session,
            claim,
            "claim.approval_added",
            actor,
            {"approvals": len(approvals), "quorum": settings.review_quorum, "round": claim.review_round},
            at=now,
        )
        if len(approvals) < settings.review_quorum:
            session.flush()
            return ActionOutcome(claim, False, approvals)
        return _transition(
            session,
            claim,
            action,
            actor=actor,
            reason=reason,
            comment=comment,
            settings=settings,
            now=now,
            principal=principal,
            approvals=approvals,
        )
    return _transition(
        session,
        claim,
        action,
        actor=actor,
        reason=reason,
        comment=comment,
        settings=settings,
        now=now,
        principal=principal,
        approvals=[],
        assignee_id=assignee_id,
    )


def _transition(
    session: Session,
    claim: Claim,
    action: Action,
    *,
    actor: audit.Actor,
    reason: str | None,
    comment: str | None,
    settings: Settings,
    now: datetime,
    principal: Principal | None,
    approvals: list[ClaimApproval],
    assignee_id: int | None = None,
) -> ActionOutcome:
    assert claim.id is not None
    previous_assignee = claim.assignee_id
    source, target = states.apply(claim, action)
    extra_events: list[tuple[str, dict[str, Any]]] = []
    lease = timedelta(seconds=settings.lease_seconds)

    if action == Action.reject:
        claim.reject_reason = reason
    elif action == Action.restore:
        claim.reject_reason = None
    elif action == Action.start:
        assert principal is not None
        claim.assignee_id = assignee_id or principal.user_id
        claim.lease_expires_at = now + lease
        via = "start" if claim.assignee_id == principal.user_id else "assignment"
        extra_events.append(("claim.assigned", {"user_id": claim.assignee_id, "role": "assignee", "via": via}))
    elif action in (Action.release, Action.expire_lease):
        claim.assignee_id = None
        claim.lease_expires_at = None
        if action == Action.expire_lease:
            extra_events.append(("claim.lease_expired", {"user_id": previous_assignee}))
        extra_events.append(("claim.unassigned", {"user_id": previous_assignee, "role": "assignee"}))
    elif action == Action.submit:
        claim.review_round += 1
        claim.lease_expires_at = None
    elif action == Action.request_changes:
        assert principal is not None and comment is not None
        claim.lease_expires_at = now + lease if claim.assignee_id else None
        add_comment_row(session, claim=claim, principal=principal, body=comment, now=now)
    elif action == Action.approve:
        snapshot = _published_snapshot(session, claim, approvals, settings, now)
        claim.published_verdict = snapshot
        claim.published_at = now
        claim.first_published_at = claim.first_published_at or now
        claim.lease_expires_at = None
        pending = (
            session.execute(
                sa.select(ClaimCorrection)
                .where(col(ClaimCorrection.claim_id) == claim.id, col(ClaimCorrection.republished_at).is_(None))
                .order_by(col(ClaimCorrection.id).desc())
            )
            .scalars()
            .first()
        )
        if pending is not None:
            pending.republished_verdict = snapshot
            pending.republished_at = now
        extra_events.append(("claim.published", {"verdict": snapshot}))
    elif action == Action.reopen:
        assert principal is not None and reason is not None
        session.add(
            ClaimCorrection(
                claim_id=claim.id,
                previous_verdict=claim.published_verdict or {},
                reason=reason,
                reopened_by=principal.user_id,
                reopened_at=now,
            )
        )
        claim.assignee_id = principal.user_id
        claim.lease_expires_at = now + lease
        extra_events.append(("claim.reopened", {"reason": reason, "previous_verdict": claim.published_verdict}))
        if previous_assignee != principal.user_id:
            extra_events.append(("claim.assigned", {"user_id": principal.user_id, "role": "assignee", "via": "reopen"}))
    elif action == Action.recheck:
        claim.assignee_id = None
        claim.lease_expires_at = None
        extra_events.append(("claim.recheck_due", {"recheck_at": _plain(claim.verdict_recheck_at)}))
        claim.verdict_recheck_at = None

    _touch(claim, actor, now)
    session.flush()
    data: dict[str, Any] = {"from": source.value, "to": target.value, "action": action.value}
    if reason:
        data["reason"] = reason
    if comment:
        data["comment"] = comment
    emit_claim_event(session, claim, "claim.state_changed", actor, data, at=now)
    for type_, payload in extra_events:
        emit_claim_event(session, claim, type_, actor, payload, at=now)
    return ActionOutcome(claim, True, approvals)


def _published_snapshot(
    session: Session, claim: Claim, approvals: list[ClaimApproval], settings: Settings, now: datetime
) -> dict[str, Any]:
    """What the public sees until the next publication: the verdict, and the claim and public
    evidence as they were approved (a reopened claim's edits stay private until approved again)."""
    public_evidence = [
        eid
        for (eid,) in session.execute(
            sa.select(col(Evidence.id)).where(
                col(Evidence.claim_id) == claim.id,
                col(Evidence.visibility) == "public",
                col(Evidence.retracted_at).is_(None),
                col(Evidence.purged_at).is_(None),
            )
        )
    ]
    rating = scale_for(settings.rating_scale).get(claim.verdict_rating or "")
    return {
        "rating": claim.verdict_rating,
        "label": rating.label if rating else claim.verdict_rating,
        "rating_value": rating.rating_value if rating else None,
        "summary": claim.verdict_summary,
        "confidence": claim.verdict_confidence,
        "findings": claim.verdict_findings,
        "author_id": claim.verdict_author_id,
        "approved_by": [a.editor_id for a in approvals],
        "published_at": now.isoformat(),
        "claim": {
            "text": claim.text,
            "claimant": claim.claimant,
            "appearance_url": claim.appearance_url,
            "appeared_at": _plain(claim.appeared_at),
            "outlet": claim.outlet,
            "language": claim.language,
        },
        "public_evidence_ids": public_evidence,
    }


def start_for(
    session: Session, *, claim: Claim, principal: Principal, assignee_id: int, settings: Settings
) -> ActionOutcome:
    """An editor starting a queued claim on someone's behalf (assignment or queue/next)."""
    states.check_allowed(State(claim.state), Action.start)
    return _carry_out(
        session,
        claim,
        Action.start,
        principal=principal,
        reason=None,
        comment=None,
        settings=settings,
        assignee_id=assignee_id,
    )


def system_action(
    session: Session, *, claim_id: int, action: Action, settings: Settings, at: datetime | None = None
) -> ActionOutcome | None:
    """A transition the system performs (lease expiry, recheck). None if no longer applicable."""
    claim = lock_claim(session, claim_id)
    if State(claim.state) not in states.transition_for(action).sources:
        return None
    return _carry_out(session, claim, action, principal=None, reason=None, comment=None, settings=settings, at=at)


# --- comments (used by request_changes; the comments routes build on it) ----------------------


def add_comment_row(session: Session, *, claim: Claim, principal: Principal, body: str, now: datetime) -> Comment:
    emails = {m.lower() for m in MENTION.findall(body)}
    mentioned: list[int] = []
    if emails:
        found = session.execute(sa.select(col(User.id)).where(col(User.email).in_(sorted(emails))))
        mentioned = [uid for (uid,) in found if uid is not None]
    assert claim.id is not None
    comment = Comment(
        claim_id=claim.id, author_id=principal.user_id, body=body, mentions=sorted(mentioned), created_at=now
    )
    session.add(comment)
    session.flush()
    emit_claim_event(
        session,
        claim,
        "claim.comment_added",
        principal.actor,
        {"comment_id": comment.id, "mentions": comment.mentions},
        at=now,
    )
    return comment


# --- reading ---------------------------------------------------------------------------------


@dataclass
class ClaimFilters:
    state: list[str] | None = None
    assignee_id: int | None = None
    tag: str | None = None
    priority: str | None = None
    claimant: str | None = None
    q: str | None = None
    overdue: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


_TERM = re.compile(r"\w+", re.UNICODE)


def _search_clause(session: Session, q: str) -> Any:
    if _is_postgres(session):
        return sa.text("claims.search @@ websearch_to_tsquery('simple', :q)").bindparams(q=q)
    # SQLite FTS5 with the trigram tokenizer matches substrings of three or more characters;
    # shorter terms fall back to LIKE over the claim text.
    terms = _TERM.findall(q)
    clauses: list[Any] = []
    long_terms = [t for t in terms if len(t) >= 3]
    if long_terms:
        match = " AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
        clauses.append(
            col(Claim.id).in_(
                sa.select(sa.column("rowid"))
                .select_from(sa.table("claims_fts"))
                .where(sa.text("claims_fts MATCH :m").bindparams(m=match))
            )
        )
    for i, term in enumerate(t for t in terms if len(t) < 3):
        clauses.append(sa.text(f"lower(claims.text) LIKE :short{i}").bindparams(**{f"short{i}": f"%{term.lower()}%"}))
    if not clauses:
        return sa.false()
    return sa.and_(*clauses)


def _list_conditions(session: Session, filters: ClaimFilters, before_id: int | None) -> list[Any]:
    conds: list[Any] = []
    if before_id is not None:
        conds.append(col(Claim.id) < before_id)
    if filters.state:
        conds.append(
            col(Claim.state).in_(filters.state) if len(filters.state) > 1 else col(Claim.state) == filters.state[0]
        )
    if filters.assignee_id is not None:
        conds.append(col(Claim.assignee_id) == filters.assignee_id)
    if filters.tag:
        conds.append(
            sa.exists().where(col(ClaimTag.claim_id) == col(Claim.id), col(ClaimTag.tag) == filters.tag.lower())
        )
    if filters.priority:
        conds.append(col(Claim.priority) == filters.priority)
    if filters.claimant:
        conds.append(sa.func.lower(col(Claim.claimant)) == filters.claimant.lower())
    if filters.overdue is not None:
        late = sa.and_(
            col(Claim.due_at).is_not(None),
            col(Claim.due_at) < clock.now(),
            col(Claim.state).not_in([State.published.value, State.rejected.value]),
        )
        conds.append(late if filters.overdue else sa.not_(late))
    if filters.created_after:
        conds.append(col(Claim.created_at) >= filters.created_after)
    if filters.created_before:
        conds.append(col(Claim.created_at) < filters.created_before)
    if filters.q:
        conds.append(_search_clause(session, filters.q))
    return conds


def list_claims(session: Session, *, filters: ClaimFilters, before_id: int | None, limit: int) -> list[Claim]:
    """Newest first, keyset-paged by id."""
    stmt = sa.select(Claim).order_by(col(Claim.id).desc()).limit(limit + 1)
    conds = _list_conditions(session, filters, before_id)
    if conds:
        stmt = stmt.where(*conds)
    return list(session.execute(stmt).scalars())


def list_claim_rows(session: Session, *, filters: ClaimFilters, before_id: int | None, limit: int) -> list[sa.Row[Any]]:
    """``list_claims`` as plain rows (same filters, order and page), for read-only presentation: a
    page of 50 claims loads in a fraction of the time the ORM takes to build 50 entities."""
    stmt = sa.select(_CLAIM_TABLE).order_by(_CLAIM_TABLE.c.id.desc()).limit(limit + 1)
    conds = _list_conditions(session, filters, before_id)
    if conds:
        stmt = stmt.where(*conds)
    return list(session.connection().execute(stmt))


def list_events(session: Session, *, claim_id: int, after_id: int | None, limit: int) -> list[AuditEvent]:
    get_claim(session, claim_id)
    stmt = (
        sa.select(AuditEvent).where(col(AuditEvent.claim_id) == claim_id).order_by(col(AuditEvent.id)).limit(limit + 1)
    )
    if after_id is not None:
        stmt = stmt.where(col(AuditEvent.id) > after_id)
    return list(session.execute(stmt).scalars())


# --- presenting ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _actions_open_to(state: str, role: Role, is_assignee: bool) -> tuple[str, ...]:
    """What the transition table lets ``role`` do from ``state`` (remembered: a page of 50 claims
    asks the same question many times)."""
    return tuple(
        action.value
        for action in states.actions_from(State(state))
        if states.may_act(states.transition_for(action), role=role, is_assignee=is_assignee)
    )


def _allowed_actions(
    state: str,
    assignee_id: int | None,
    verdict_author_id: int | None,
    principal: Principal,
    approved_by: Collection[int],
) -> list[str]:
    is_assignee = assignee_id is not None and assignee_id == principal.user_id
    allowed = _actions_open_to(state, principal.role, is_assignee)
    if Action.approve.value in allowed and (verdict_author_id == principal.user_id or principal.user_id in approved_by):
        return [a for a in allowed if a != Action.approve.value]
    return list(allowed)


def allowed_actions_for(
    claim: Claim | sa.Row[Any], principal: Principal, approved_by: Collection[int] = ()
) -> list[str]:
    """``approved_by``: the editors who approved the current review round (they may not again)."""
    return _allowed_actions(claim.state, claim.assignee_id, claim.verdict_author_id, principal, approved_by)


_REVIEWER_TABLE: sa.Table = ClaimReviewer.__table__  # type: ignore[attr-defined]
_REVIEWER_IDS = "reviewer_ids"
# Built once, run as a plain Core statement: every claim the API shows needs its reviewers.
_REVIEWERS_OF = (
    sa.select(_REVIEWER_TABLE.c.claim_id, _REVIEWER_TABLE.c.user_id)
    .where(_REVIEWER_TABLE.c.claim_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_REVIEWER_TABLE.c.claim_id, _REVIEWER_TABLE.c.user_id)
)
# One claim (the common read): a plain parameter, without the expanding IN's per-call rendering.
_REVIEWERS_OF_ONE = (
    sa.select(_REVIEWER_TABLE.c.claim_id, _REVIEWER_TABLE.c.user_id)
    .where(_REVIEWER_TABLE.c.claim_id == sa.bindparam("id"))
    .order_by(_REVIEWER_TABLE.c.user_id)
)
_APPROVAL_TABLE: sa.Table = ClaimApproval.__table__  # type: ignore[attr-defined]
_APPROVALS_OF = (
    sa.select(
        _APPROVAL_TABLE.c.claim_id,
        _APPROVAL_TABLE.c.review_round,
        _APPROVAL_TABLE.c.editor_id,
        _APPROVAL_TABLE.c.created_at,
    )
    .where(_APPROVAL_TABLE.c.claim_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_APPROVAL_TABLE.c.id)
)


# The columns ClaimPublic shows as stored; present() adds the derived fields.
_SHOWN_AS_STORED = (
    "id",
    "text",
    "claimant",
    "appearance_url",
    "appeared_at",
    "outlet",
    "context",
    "language",
    "priority",
    "due_at",
    "public",
    "state",
    "reject_reason",
    "figure",
    "source",
    "assignee_id",
    "lease_expires_at",
    "review_round",
    "published_verdict",
    "published_at",
    "version",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
)
_READ_FOR_PRESENT = (
    *_SHOWN_AS_STORED,
    "tags",
    "verdict_rating",
    "verdict_summary",
    "verdict_confidence",
    "verdict_recheck_at",
    "verdict_findings",
    "verdict_author_id",
    "verdict_set_at",
)
_PUBLIC_LIST: TypeAdapter[list[ClaimPublic]] = TypeAdapter(list[ClaimPublic])
_DONE_STATES = (State.published.value, State.rejected.value)


def _values(claim: Claim | sa.Row[Any]) -> Mapping[Any, Any]:
    if isinstance(claim, sa.Row):
        return claim._mapping
    return {name: getattr(claim, name) for name in _READ_FOR_PRESENT}


def present(
    session: Session | sa.Connection,
    claims: Sequence[Claim] | Sequence[sa.Row[Any]],
    *,
    principal: Principal,
    settings: Settings,
    new: bool = False,
) -> list[ClaimPublic]:
    """Claims as the API shows them, with reviewers and current approvals fetched in two Core
    queries (on the session's connection, or on a bare connection for point reads); a row from
    :func:`claim_row` brings its reviewers along, and only a claim in review needs the second.
    ``new``: the claims were created in this transaction, so they have neither yet.

    The public shapes are built as plain dicts and validated in one pass by pydantic's core, which
    costs less than constructing each model field by field in Python."""
    rows = [_values(c) for c in claims]
    ids = [m["id"] for m in rows if m["id"] is not None]
    reviewers: dict[int, list[int]] = {i: [] for i in ids}
    approvals: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids and not new:
        conn = _connection(session)
        if len(rows) == 1 and _REVIEWER_IDS in rows[0]:  # read with the claim (claim_row)
            reviewers[ids[0]] = sorted(rows[0][_REVIEWER_IDS] or ())
        else:
            if len(ids) == 1:
                found = conn.execute(_REVIEWERS_OF_ONE, {"id": ids[0]})
            else:
                found = conn.execute(_REVIEWERS_OF, {"ids": ids})
            for cid, uid in found:
                reviewers[cid].append(uid)
        rounds = {m["id"]: m["review_round"] for m in rows}
        in_review = [m["id"] for m in rows if m["state"] == State.in_review.value]
        if in_review:
            for approval in conn.execute(_APPROVALS_OF, {"ids": in_review}):
                if rounds.get(approval.claim_id) == approval.review_round:
                    approvals[approval.claim_id].append(
                        {"editor_id": approval.editor_id, "approved_at": approval.created_at}
                    )
    scale = scale_for(settings.rating_scale)
    now = clock.now()
    shown: list[dict[str, Any]] = []
    for m in rows:
        cid = m["id"]
        assert cid is not None
        data = {name: m[name] for name in _SHOWN_AS_STORED}
        data["figure"] = m["figure"] or None
        data["source"] = m["source"] or None
        data["tags"] = list(m["tags"] or ())
        due_at = m["due_at"]
        data["overdue"] = bool(due_at and due_at < now and m["state"] not in _DONE_STATES)
        rating_name = m["verdict_rating"]
        if rating_name:
            rating = scale.get(rating_name)
            data["verdict"] = {
                "rating": rating_name,
                "label": rating.label if rating else None,
                "summary": m["verdict_summary"],
                "confidence": m["verdict_confidence"],
                "recheck_at": m["verdict_recheck_at"],
                "findings": m["verdict_findings"],
                "author_id": m["verdict_author_id"],
                "set_at": m["verdict_set_at"],
            }
        else:
            data["verdict"] = None
        approved = approvals[cid]
        data["reviewers"] = reviewers[cid]
        data["approvals"] = approved
        data["allowed_actions"] = _allowed_actions(
            m["state"], m["assignee_id"], m["verdict_author_id"], principal, [a["editor_id"] for a in approved]
        )
        shown.append(data)
    return _PUBLIC_LIST.validate_python(shown)
