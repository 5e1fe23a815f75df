"""Assignments (one assignee, any number of reviewers), the comment thread, and the desk overview."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from app.auth.models import User
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims.models import Claim, ClaimReviewer, Comment
from app.claims.states import Action, State
from app.clock import clock
from app.config import Settings
from app.errors import Conflict, Forbidden, NotFound, Unprocessable


def _eligible_user(session: Session, user_id: int, *, at_least: Role, what: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Unprocessable(f"No user with id {user_id}.", errors=[{"loc": ["body", "user_id"], "msg": "unknown"}])
    if not user.active:
        raise Unprocessable(
            f"{user.email} is inactive and cannot be {what}.",
            errors=[{"loc": ["body", "user_id"], "msg": "inactive"}],
        )
    if not Role(user.role).admits(at_least):
        raise Unprocessable(
            f"{user.email} is a {user.role}; {what} must be {at_least.value} or above.",
            errors=[{"loc": ["body", "user_id"], "msg": f"role {user.role} cannot be {what}"}],
        )
    return user


def assign(
    session: Session, *, principal: Principal, claim_id: int, user_id: int, role: str, settings: Settings
) -> Claim:
    if not principal.has(Role.editor):
        raise Forbidden("Assigning work needs the editor role or above.")
    claim = claims_service.lock_claim(session, claim_id)
    state = State(claim.state)
    now = clock.now()
    if role == "reviewer":
        if state == State.rejected:
            raise Conflict("The claim is rejected; restore it before adding reviewers.")
        _eligible_user(session, user_id, at_least=Role.editor, what="a reviewer")
        exists = session.get(ClaimReviewer, (claim_id, user_id))
        if exists is None:
            session.add(ClaimReviewer(claim_id=claim_id, user_id=user_id, added_by=principal.user_id, added_at=now))
            claim.version += 1
            claim.updated_at, claim.updated_by = now, principal.user_id
            session.flush()
            claims_service.emit_claim_event(
                session,
                claim,
                "claim.assigned",
                principal.actor,
                {"user_id": user_id, "role": "reviewer"},
                at=now,
            )
        return claim
    _eligible_user(session, user_id, at_least=Role.checker, what="the assignee")
    if state == State.queued:
        claims_service.start_for(session, claim=claim, principal=principal, assignee_id=user_id, settings=settings)
        return claim
    if state != State.in_progress:
        raise Conflict(
            f"An assignee is set on queued or in_progress claims; this one is {state.value}.",
            allowed_actions=claims_service.allowed_actions_for(claim, principal),
        )
    if claim.assignee_id == user_id:
        return claim
    previous = claim.assignee_id
    claim.assignee_id = user_id
    claim.lease_expires_at = now + timedelta(seconds=settings.lease_seconds)
    claim.version += 1
    claim.updated_at, claim.updated_by = now, principal.user_id
    session.flush()
    if previous is not None:
        claims_service.emit_claim_event(
            session,
            claim,
            "claim.unassigned",
            principal.actor,
            {"user_id": previous, "role": "assignee"},
            at=now,
        )
    claims_service.emit_claim_event(
        session,
        claim,
        "claim.assigned",
        principal.actor,
        {"user_id": user_id, "role": "assignee", "via": "assignment"},
        at=now,
    )
    return claim


def unassign(session: Session, *, principal: Principal, claim_id: int, user_id: int, settings: Settings) -> Claim:
    if not principal.has(Role.editor):
        raise Forbidden("Changing assignments needs the editor role or above.")
    claim = claims_service.lock_claim(session, claim_id)
    now = clock.now()
    reviewer = session.get(ClaimReviewer, (claim_id, user_id))
    if reviewer is not None:
        session.delete(reviewer)
        claim.version += 1
        claim.updated_at, claim.updated_by = now, principal.user_id
        session.flush()
        claims_service.emit_claim_event(
            session,
            claim,
            "claim.unassigned",
            principal.actor,
            {"user_id": user_id, "role": "reviewer"},
            at=now,
        )
        return claim
    if claim.assignee_id == user_id:
        if claim.state != State.in_progress:
            raise Conflict(f"The assignee of a {claim.state} claim stays on the record.")
        claims_service.perform_action(
            session,
            principal=principal,
            claim_id=claim_id,
            action_name=Action.release.value,
            settings=settings,
        )
        return claim
    raise NotFound(f"User {user_id} is not assigned to claim {claim_id}.")


@dataclass
class Assignments:
    assignee: dict[str, Any] | None
    reviewers: list[dict[str, Any]]


def assignments(session: Session, *, claim_id: int) -> Assignments:
    claim = claims_service.get_claim(session, claim_id)
    assignee = None
    if claim.assignee_id is not None:
        user = session.get(User, claim.assignee_id)
        assignee = {
            "user_id": claim.assignee_id,
            "name": user.name if user else None,
            "email": user.email if user else None,
            "lease_expires_at": claim.lease_expires_at,
        }
    rows = session.execute(
        sa.select(ClaimReviewer, User)
        .join(User, col(User.id) == col(ClaimReviewer.user_id))
        .where(col(ClaimReviewer.claim_id) == claim_id)
        .order_by(col(ClaimReviewer.added_at))
    ).all()
    reviewers = [
        {
            "user_id": r.user_id,
            "name": u.name,
            "email": u.email,
            "added_at": r.added_at,
            "added_by": r.added_by,
        }
        for r, u in rows
    ]
    return Assignments(assignee, reviewers)


# --- comments --------------------------------------------------------------------------------


def add_comment(session: Session, *, principal: Principal, claim_id: int, body: str, settings: Settings) -> Comment:
    if not principal.has(Role.checker):
        raise Forbidden("Commenting needs the checker role or above.")
    claim = claims_service.lock_claim(session, claim_id)
    text = body.strip()
    if not text:
        raise Unprocessable("A comment cannot be empty.", errors=[{"loc": ["body", "body"], "msg": "empty"}])
    now = clock.now()
    if claim.state == State.in_progress and claim.assignee_id == principal.user_id:
        claim.lease_expires_at = now + timedelta(seconds=settings.lease_seconds)
    return claims_service.add_comment_row(session, claim=claim, principal=principal, body=text, now=now)


def list_comments(session: Session, *, claim_id: int, after_id: int | None, limit: int) -> list[Comment]:
    claims_service.get_claim(session, claim_id)
    stmt = sa.select(Comment).where(col(Comment.claim_id) == claim_id).order_by(col(Comment.id)).limit(limit + 1)
    if after_id is not None:
        stmt = stmt.where(col(Comment.id) > after_id)
    return list(session.execute(stmt).scalars())


# --- the desk overview -----------------------------------------------------------------------

MEDIAN_WINDOW = timedelta(days=7)


def desk_stats(session: Session) -> dict[str, Any]:
    now = clock.now()
    by_state = {s.value: 0 for s in State}
    for state, count in session.execute(sa.select(col(Claim.state), sa.func.count()).group_by(col(Claim.state))):
        by_state[state] = int(count)
    open_states = [State.in_progress.value, State.in_review.value]
    per_assignee = [
        {"user_id": uid, "name": name, "state": state, "count": int(count)}
        for uid, name, state, count in session.execute(
            sa.select(col(Claim.assignee_id), col(User.name), col(Claim.state), sa.func.count())
            .join(User, col(User.id) == col(Claim.assignee_id))
            .where(col(Claim.state).in_(open_states))
            .group_by(col(Claim.assignee_id), col(User.name), col(Claim.state))
            .order_by(col(Claim.assignee_id), col(Claim.state))
        )
    ]
    overdue = session.execute(
        sa.select(sa.func.count())
        .select_from(Claim)
        .where(
            col(Claim.due_at).is_not(None),
            col(Claim.due_at) < now,
            col(Claim.state).not_in([State.published.value, State.rejected.value]),
        )
    ).scalar_one()
    oldest = session.execute(
        sa.select(sa.func.min(col(Claim.created_at))).where(col(Claim.state) == State.queued.value)
    ).scalar_one()
    durations = [
        (published - created).total_seconds()
        for created, published in session.execute(
            sa.select(col(Claim.created_at), col(Claim.first_published_at)).where(
                col(Claim.first_published_at).is_not(None),
                col(Claim.first_published_at) >= now - MEDIAN_WINDOW,
            )
        )
        if published is not None
    ]
    return {
        "by_state": by_state,
        "per_assignee": per_assignee,
        "overdue": int(overdue),
        "oldest_queued_seconds": (now - oldest).total_seconds() if oldest else None,
        "median_seconds_to_publish_7d": statistics.median(durations) if durations else None,
        "published_last_7d": len(durations),
        "as_of": now,
    }
