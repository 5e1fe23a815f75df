"""The workflow: every state, every action, and the one table of transitions between them.

This module is the only code that assigns a claim's state (``apply``); a test checks that no other
module does. It is pure: object rules (who is the assignee, four eyes) and preconditions (a verdict,
evidence) are the service's, applied in the order domain rules give.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from app.auth.roles import Role
from app.errors import Conflict


class State(StrEnum):
    submitted = "submitted"
    queued = "queued"
    in_progress = "in_progress"
    in_review = "in_review"
    published = "published"
    rejected = "rejected"


class Action(StrEnum):
    queue = "queue"
    reject = "reject"
    restore = "restore"
    start = "start"
    release = "release"
    submit = "submit"
    request_changes = "request_changes"
    approve = "approve"
    reopen = "reopen"
    expire_lease = "expire_lease"
    recheck = "recheck"


@dataclass(frozen=True)
class Transition:
    action: Action
    sources: frozenset[State]
    target: State
    # The least role that may ask for it; None means only the system performs it.
    role: Role | None
    needs_reason: bool = False
    needs_comment: bool = False
    # Only the claim's assignee may do it, unless the caller holds ``assignee_or`` (or above).
    assignee_only: bool = False
    assignee_or: Role | None = None


def _t(action: Action, sources: set[State], target: State, role: Role | None, **kw: object) -> Transition:
    return Transition(action, frozenset(sources), target, role, **kw)  # type: ignore[arg-type]


S = State
TRANSITIONS: dict[Action, Transition] = {
    t.action: t
    for t in (
        _t(Action.queue, {S.submitted}, S.queued, Role.editor),
        _t(Action.reject, {S.submitted, S.queued}, S.rejected, Role.editor, needs_reason=True),
        _t(Action.restore, {S.rejected}, S.submitted, Role.editor),
        _t(Action.start, {S.queued}, S.in_progress, Role.checker),
        _t(
            Action.release,
            {S.in_progress},
            S.queued,
            Role.checker,
            assignee_only=True,
            assignee_or=Role.editor,
        ),
        _t(Action.submit, {S.in_progress}, S.in_review, Role.checker, assignee_only=True),
        _t(Action.request_changes, {S.in_review}, S.in_progress, Role.editor, needs_comment=True),
        _t(Action.approve, {S.in_review}, S.published, Role.editor),
        _t(Action.reopen, {S.published}, S.in_progress, Role.editor, needs_reason=True),
        _t(Action.expire_lease, {S.in_progress}, S.queued, None),
        _t(Action.recheck, {S.published}, S.queued, None),
    )
}

# States whose claims still take evidence and edits from checkers.
OPEN_STATES = frozenset({S.submitted, S.queued, S.in_progress, S.in_review})


def parse_action(name: str) -> Action | None:
    try:
        return Action(name)
    except ValueError:
        return None


def transition_for(action: Action) -> Transition:
    return TRANSITIONS[action]


def actions_from(state: State) -> list[Action]:
    """Every action the table allows from ``state`` (system actions included)."""
    return [a for a, t in TRANSITIONS.items() if state in t.sources]


def user_actions_from(state: State) -> list[str]:
    return [a.value for a in actions_from(state) if TRANSITIONS[a].role is not None]


def check_allowed(state: State, action: Action) -> Transition:
    """The transition, or a 409 naming the actions allowed from ``state``."""
    transition = TRANSITIONS[action]
    if state not in transition.sources:
        raise Conflict(
            f"Cannot {action.value} a claim that is {state.value}.",
            state=state.value,
            allowed_actions=user_actions_from(state),
        )
    return transition


def may_act(transition: Transition, *, role: Role, is_assignee: bool) -> bool:
    """Role and assignee rules together (what the UI and allowed_actions use)."""
    if transition.role is None or not role.admits(transition.role):
        return False
    if transition.assignee_only and not is_assignee:
        return transition.assignee_or is not None and role.admits(transition.assignee_or)
    return True


class HasState(Protocol):
    state: str


def apply(claim: HasState, action: Action) -> tuple[State, State]:
    """Move ``claim`` along ``action``; the only assignment of a claim's state in the code base."""
    source = State(claim.state)
    transition = check_allowed(source, action)
    claim.state = transition.target.value
    return source, transition.target


def initial_state() -> State:
    return State.submitted
