"""The transition table itself, pure: every (state, action) pair."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.auth.roles import Role
from app.claims import states
from app.claims.states import Action, State
from app.errors import Conflict

EXPECTED = {
    (Action.queue, State.submitted): State.queued,
    (Action.reject, State.submitted): State.rejected,
    (Action.reject, State.queued): State.rejected,
    (Action.restore, State.rejected): State.submitted,
    (Action.start, State.queued): State.in_progress,
    (Action.release, State.in_progress): State.queued,
    (Action.submit, State.in_progress): State.in_review,
    (Action.request_changes, State.in_review): State.in_progress,
    (Action.approve, State.in_review): State.published,
    (Action.reopen, State.published): State.in_progress,
    (Action.expire_lease, State.in_progress): State.queued,
    (Action.recheck, State.published): State.queued,
}


class Box:
    def __init__(self, state: State) -> None:
        self.state = state.value


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
def test_every_pair(state: State, action: Action) -> None:
    box = Box(state)
    target = EXPECTED.get((action, state))
    if target is None:
        with pytest.raises(Conflict) as err:
            states.apply(box, action)
        assert box.state == state.value
        assert err.value.extra["allowed_actions"] == states.user_actions_from(state)
        assert action.value not in err.value.extra["allowed_actions"]
    else:
        assert states.apply(box, action) == (state, target)
        assert box.state == target.value


def test_roles_in_the_table() -> None:
    t = states.TRANSITIONS
    assert {a for a, tr in t.items() if tr.role is None} == {Action.expire_lease, Action.recheck}
    assert t[Action.start].role == Role.checker
    assert t[Action.approve].role == Role.editor
    assert t[Action.reject].needs_reason and t[Action.reopen].needs_reason
    assert t[Action.request_changes].needs_comment
    # the assignee rule: a checker who is not the assignee may not submit or release; an editor may release
    submit, release = t[Action.submit], t[Action.release]
    assert not states.may_act(submit, role=Role.checker, is_assignee=False)
    assert not states.may_act(submit, role=Role.editor, is_assignee=False)
    assert states.may_act(submit, role=Role.checker, is_assignee=True)
    assert states.may_act(release, role=Role.editor, is_assignee=False)
    assert not states.may_act(release, role=Role.checker, is_assignee=False)
    assert not states.may_act(t[Action.queue], role=Role.checker, is_assignee=True)


def test_only_the_states_module_assigns_a_claims_state() -> None:
    root = Path(__file__).resolve().parents[2] / "app"
    offenders = []
    pattern = re.compile(r"(\.state\s*=[^=])|(values\([^)]*\bstate\s*=)|(\"state\"\s*:\s*State\.)")
    for path in root.rglob("*.py"):
        if path.name == "states.py" and path.parent.name == "claims":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "request.state" not in line and "app.state" not in line:
                offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert offenders == []
