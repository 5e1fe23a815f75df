"""Who may call what: every route of the app against every role and every kind of bad key.

The table below has one row per route (method and path template). Each row says the least role the
route admits (or that it is public), what an admitted caller gets for the request the test sends,
and whether the path points at existing rows or at ids that do not exist. Routes are enumerated from
the app itself, so a route added without a row fails ``test_every_route_has_a_row``.

For a row with least role R, per caller:
- no key, a malformed key, another auth scheme, a revoked key, an expired key, an inactive user's
  key: 401 problem+json with WWW-Authenticate;
- a role below R: 403 problem+json (before the body is looked at: the test sends bodies that are
  not valid, so a 422 here would mean the body was checked first);
- R or above: the row's answer, which is 2xx or the documented non-auth error (404/422) for the
  ids and body sent.
Public rows answer the same to everyone, bad keys included.

Object rules (the assignee's remit, contributors' own claims, four eyes, evidence authors) are
tested below the matrix on claims made for each test. One app and one set of keys per database for
the whole module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.models import ApiKey
from app.claims.states import TRANSITIONS
from app.clock import clock
from app.db import make_database
from app.main import create_app
from tests.conftest import BACKENDS, Desk, Person, _truncate_pg, make_settings
from tests.helpers import Journey

ROLES = ["viewer", "contributor", "checker", "editor", "admin"]
ORDER = {name: i for i, name in enumerate(ROLES)}
MISSING = "987654"  # an id no row has
PUBLIC = "public"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


@dataclass(frozen=True)
class Row:
    least: str  # a role name, or "public"
    ok: int | dict[str, int]  # what an admitted caller gets (per role where an object rule applies)
    real: bool = True  # path ids point at existing rows (else at MISSING)
    body: Any = None  # a JSON body to send (None: no body)


# fmt: off
TABLE: dict[tuple[str, str], Row] = {
    # claims
    ("POST", "/api/v1/claims"): Row("contributor", 422, body={}),
    ("POST", "/api/v1/claims:batch"): Row("contributor", 422, body={}),
    ("GET", "/api/v1/claims"): Row("viewer", 200),
    ("GET", "/api/v1/claims/{claim_id}"): Row("viewer", 200),
    ("PATCH", "/api/v1/claims/{claim_id}"): Row("contributor", 404, real=False, body={}),
    # The route takes any key; each action's own least role is checked first (see test_action_roles).
    ("POST", "/api/v1/claims/{claim_id}/actions/{action}"): Row("viewer", 404, real=False),
    ("PUT", "/api/v1/claims/{claim_id}/verdict"): Row("checker", 422, real=False, body={}),
    ("GET", "/api/v1/claims/{claim_id}/events"): Row("viewer", 200),
    ("GET", "/api/v1/claims/{claim_id}/related"): Row("viewer", 200),
    ("POST", "/api/v1/claims/{claim_id}/related/{other_id}"): Row("editor", 404, real=False),
    ("DELETE", "/api/v1/claims/{claim_id}/related/{other_id}"): Row("editor", 404, real=False),
    ("GET", "/api/v1/claims/{claim_id}/claimreview"): Row("viewer", 200),
    # queue
    ("POST", "/api/v1/queue/next"): Row("checker", 204, body={"tags": ["nothing-has-this-tag"]}),
    ("GET", "/api/v1/queue"): Row("checker", 200),
    # assignments, comments, stats
    ("GET", "/api/v1/claims/{claim_id}/assignments"): Row("editor", 200),
    ("POST", "/api/v1/claims/{claim_id}/assignments"): Row("editor", 422, real=False, body={}),
    ("DELETE", "/api/v1/claims/{claim_id}/assignments/{user_id}"): Row("editor", 404, real=False),
    ("GET", "/api/v1/claims/{claim_id}/comments"): Row("viewer", 200),
    ("POST", "/api/v1/claims/{claim_id}/comments"): Row("checker", 422, real=False, body={}),
    ("GET", "/api/v1/desk/stats"): Row("editor", 200),
    # evidence (adding checks role, then the claim, before it reads the body: so 404 here)
    ("POST", "/api/v1/claims/{claim_id}/evidence"): Row("contributor", 404, real=False, body={}),
    ("GET", "/api/v1/claims/{claim_id}/evidence"): Row("viewer", 200),
    ("GET", "/api/v1/evidence/{evidence_id}"): Row("viewer", 200),
    ("GET", "/api/v1/evidence/{evidence_id}/content"): Row("viewer", 200),
    ("POST", "/api/v1/evidence/{evidence_id}/retract"): Row("contributor", 422, real=False, body={}),
    ("POST", "/api/v1/evidence/{evidence_id}/purge"): Row("admin", 422, real=False, body={}),
    # intake: a contributor reads only the articles they posted (others' are 404 to them)
    ("POST", "/api/v1/intake/articles"): Row("contributor", 422, body={}),
    ("GET", "/api/v1/intake/articles"): Row("contributor", 200),
    ("GET", "/api/v1/intake/articles/{article_id}"): Row(
        "contributor", {"contributor": 200, "checker": 404, "editor": 200, "admin": 200}
    ),
    ("POST", "/api/v1/intake/articles/{article_id}/candidates/{index}/accept"): Row("contributor", 404, real=False),
    # publishing and the public
    ("GET", "/public/fact-checks"): Row(PUBLIC, 200),
    ("GET", "/public/fact-checks/{claim_id}"): Row(PUBLIC, 200),
    ("GET", "/public/rating-scale"): Row(PUBLIC, 200),
    ("GET", "/public/evidence/{evidence_id}/content"): Row(PUBLIC, 200),
    # users and keys
    ("GET", "/api/v1/me"): Row("viewer", 200),
    ("POST", "/api/v1/users"): Row("admin", 422, body={}),
    ("GET", "/api/v1/users"): Row("admin", 200),
    ("GET", "/api/v1/users/{user_id}"): Row("admin", 200),
    ("PATCH", "/api/v1/users/{user_id}"): Row("admin", 404, real=False, body={}),
    ("POST", "/api/v1/users/{user_id}/api-keys"): Row("admin", 404, real=False, body={}),
    ("GET", "/api/v1/users/{user_id}/api-keys"): Row("admin", 200),
    ("DELETE", "/api/v1/api-keys/{key_id}"): Row("admin", 404, real=False),
    # webhooks (no worker runs: nothing is sent)
    ("POST", "/api/v1/webhooks"): Row("admin", 422, body={}),
    ("GET", "/api/v1/webhooks"): Row("admin", 200),
    ("GET", "/api/v1/webhooks/{webhook_id}"): Row("admin", 200),
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): Row("admin", 404, real=False, body={}),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): Row("admin", 404, real=False),
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): Row("admin", 404, real=False),
    ("POST", "/api/v1/webhooks/{webhook_id}/ping"): Row("admin", 404, real=False),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): Row("admin", 200),
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): Row("admin", 404, real=False),
    ("POST", "/api/v1/webhooks/{webhook_id}/recover"): Row("admin", 422, real=False, body={}),
    # operations and documentation
    ("GET", "/healthz"): Row(PUBLIC, 200),
    ("GET", "/readyz"): Row(PUBLIC, 200),
    ("GET", "/metrics"): Row(PUBLIC, 200),
    ("GET", "/openapi.json"): Row(PUBLIC, 200),
    ("GET", "/docs"): Row(PUBLIC, 200),
    ("GET", "/docs/oauth2-redirect"): Row(PUBLIC, 200),
    ("GET", "/redoc"): Row(PUBLIC, 200),
}
# fmt: on

# The browser desk signs people in with a session cookie, not an API key; its own role matrix is in
# tests/web. Here: everything under it is accounted for, and an API key alone opens none of it.
DESK_PREFIX = "/desk"
DESK_OPEN = {("GET", "/desk/signin")}

BAD_CALLERS = ["no key", "malformed key", "other scheme", "revoked key", "expired key", "inactive user"]


@dataclass
class Matrix:
    client: TestClient
    app: Any
    people: dict[str, Person]
    bad: dict[str, dict[str, str]]
    ids: dict[str, str]
    journey: Journey
    desk: Desk
    extra: dict[str, Any] = field(default_factory=dict)


def _route_contexts(app: Any) -> Any:
    """Every route with its full path: FastAPI 0.16x keeps included routers as nodes of app.routes
    (iter_route_contexts flattens them); earlier versions copy their routes into it."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def _routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for ctx in _route_contexts(app):
        path = ctx.path
        methods = ctx.methods or set()
        if not methods:  # a mount (the desk's static files)
            assert path.startswith(DESK_PREFIX), path
            continue
        for method in methods:
            found.append((method, path))
    return sorted(set(found))


def _row(method: str, path: str) -> Row | None:
    row = TABLE.get((method, path))
    if row is None and method == "HEAD":
        row = TABLE.get(("GET", path))
    return row


def _seed(client: TestClient, desk: Desk, database: Any) -> Matrix:
    j = Journey(client, desk)
    people = {"viewer": j.viewer, "contributor": j.contributor, "checker": j.checker, "editor": j.editor}
    people["admin"] = j.admin
    # A published public claim with a public file.
    cid = int(j.create(public=True)["id"])
    j.act(cid, "queue", j.editor)
    j.act(cid, "start", j.checker)
    up = client.post(
        f"/api/v1/claims/{cid}/evidence",
        files={"file": ("pixel.png", PNG, "image/png")},
        data={"visibility": "public"},
        headers=j.checker.headers,
    )
    assert up.status_code == 201, up.text
    j.verdict(cid, j.checker)
    j.act(cid, "submit", j.checker)
    j.act(cid, "approve", j.editor)
    article = client.post(
        "/api/v1/intake/articles",
        json={"text": "The governor said 40 people died in the district."},
        headers=j.contributor.headers,
    )
    assert article.status_code == 201, article.text
    hook = client.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"]}, headers=j.admin.headers
    )
    assert hook.status_code == 201, hook.text
    ids = {
        "claim_id": str(cid),
        "other_id": str(cid),
        "evidence_id": str(up.json()["id"]),
        "article_id": str(article.json()["id"]),
        "index": "0",
        "action": "approve",
        "user_id": str(j.viewer.id),
        "key_id": str(j.viewer.principal.api_key_id),
        "webhook_id": str(hook.json()["id"]),
        "delivery_id": MISSING,
    }
    # Keys that must not work.
    revoked = desk.person("checker")
    expired = desk.person("editor")
    inactive = desk.person("admin")
    with database.transaction() as session:
        auth_service.revoke_api_key(session, actor=Actor.system(), key_id=revoked.principal.api_key_id)
        auth_service.update_user(session, actor=Actor.system(), user_id=inactive.id, active=False)
        session.execute(
            sa.update(ApiKey)
            .where(ApiKey.id == expired.principal.api_key_id)  # type: ignore[arg-type]
            .values(expires_at=clock.now() - timedelta(minutes=1))
        )
    bad = {
        "no key": {},
        "malformed key": {"Authorization": "Bearer cdk_this-is-not-a-key"},
        "other scheme": {"Authorization": f"Basic {j.admin.key}"},
        "revoked key": revoked.headers,
        "expired key": expired.headers,
        "inactive user": inactive.headers,
    }
    return Matrix(client=client, app=client.app, people=people, bad=bad, ids=ids, journey=j, desk=desk)


@pytest.fixture(scope="module", params=BACKENDS)
def matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    tmp = tmp_path_factory.mktemp("matrix")
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp / "claimdesk.db")
        url = f"sqlite:///{tmp / 'claimdesk.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    database = make_database(make_settings(url, tmp))
    if database.is_postgres:
        _truncate_pg(database)
    app = create_app(make_settings(url, tmp), database, start_worker=False)
    app.state.owns_database = False
    with TestClient(app, raise_server_exceptions=False) as client:
        yield _seed(client, Desk(database), database)
    database.dispose()


def _url(m: Matrix, path: str, row: Row) -> str:
    for name, value in m.ids.items():
        path = path.replace("{" + name + "}", value if row.real else MISSING)
    assert "{" not in path, path
    return path


def _call(m: Matrix, method: str, url: str, row: Row, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if row.body is not None:
        kwargs["json"] = row.body
    return m.client.request(method, url, **kwargs)


def _expected(row: Row, role: str) -> int:
    return row.ok[role] if isinstance(row.ok, dict) else row.ok


def test_every_route_has_a_row(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path), start_worker=False)
    missing = [
        (method, path)
        for method, path in _routes(app)
        if not path.startswith(DESK_PREFIX) and _row(method, path) is None
    ]
    assert not missing, f"routes without a row in the access table: {missing}"
    stale = [key for key in TABLE if key not in set(_routes(app))]
    assert not stale, f"rows for routes that no longer exist: {stale}"


ALL_ROUTES = sorted(TABLE)


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES, ids=[f"{m} {p}" for m, p in ALL_ROUTES])
def test_route_against_every_caller(matrix: Matrix, method: str, path: str) -> None:
    m = matrix
    row = TABLE[(method, path)]
    url = _url(m, path, row)
    wrong: list[str] = []
    methods = [method] + (["HEAD"] if ("HEAD", path) in _routes(m.app) and method == "GET" else [])
    for verb in methods:
        for name, headers in m.bad.items():
            r = _call(m, verb, url, row, headers)
            want = _expected(row, "admin") if row.least == PUBLIC else 401
            if r.status_code != want:
                wrong.append(f"{verb} {name}: {r.status_code} (want {want}) {r.text[:200]}")
            elif want == 401:
                if "bearer" not in r.headers.get("www-authenticate", "").lower():
                    wrong.append(f"{verb} {name}: 401 without WWW-Authenticate")
                if r.headers.get("content-type") != "application/problem+json":
                    wrong.append(f"{verb} {name}: 401 as {r.headers.get('content-type')}")
        for role, person in m.people.items():
            r = _call(m, verb, url, row, person.headers)
            admitted = row.least == PUBLIC or ORDER[role] >= ORDER[row.least]
            want = _expected(row, role) if admitted else 403
            if r.status_code != want:
                wrong.append(f"{verb} {role}: {r.status_code} (want {want}) {r.text[:200]}")
            elif want >= 400 and r.headers.get("content-type") != "application/problem+json":
                wrong.append(f"{verb} {role}: {want} as {r.headers.get('content-type')}")
    assert not wrong, "\n".join(wrong)


def test_an_api_key_opens_nothing_on_the_browser_desk(matrix: Matrix) -> None:
    desk_routes = [(m, p) for m, p in _routes(matrix.app) if p.startswith(DESK_PREFIX)]
    assert desk_routes
    for method, path in desk_routes:
        if (method, path) in DESK_OPEN or "{" in path:
            continue
        r = matrix.client.request(method, path, headers=matrix.people["admin"].headers, follow_redirects=False)
        assert not 200 <= r.status_code < 300, (method, path, r.status_code)


ACTION_LEAST = {action.value: t.role.value for action, t in TRANSITIONS.items() if t.role is not None}
SYSTEM_ACTIONS = [action.value for action, t in TRANSITIONS.items() if t.role is None]


@pytest.mark.parametrize("action", sorted(ACTION_LEAST))
def test_action_roles(matrix: Matrix, action: str) -> None:
    """Each action's least role is checked before the claim is looked up, and before the body is:
    a role below it is 403 even with a body that is not valid; at or above it, an unknown claim is 404."""
    wrong = []
    for role, person in matrix.people.items():
        url = f"/api/v1/claims/{MISSING}/actions/{action}"
        r = matrix.client.post(url, json={"not_a_field": 1}, headers=person.headers)
        want = 403 if ORDER[role] < ORDER[ACTION_LEAST[action]] else 422
        if r.status_code != want:
            wrong.append(f"{role} with a bad body: {r.status_code} (want {want}) {r.text[:200]}")
        r = matrix.client.post(url, headers=person.headers)
        want = 403 if ORDER[role] < ORDER[ACTION_LEAST[action]] else 404
        if r.status_code != want:
            wrong.append(f"{role}: {r.status_code} (want {want}) {r.text[:200]}")
    for name, headers in matrix.bad.items():
        r = matrix.client.post(f"/api/v1/claims/{MISSING}/actions/{action}", headers=headers)
        if r.status_code != 401:
            wrong.append(f"{name}: {r.status_code}")
    assert not wrong, "\n".join(wrong)


def test_system_actions_are_nobodys(matrix: Matrix) -> None:
    cid = matrix.ids["claim_id"]
    for action in SYSTEM_ACTIONS:
        for role in ROLES:
            r = matrix.client.post(f"/api/v1/claims/{cid}/actions/{action}", headers=matrix.people[role].headers)
            assert r.status_code == 403, (action, role, r.text)


# --- object rules -------------------------------------------------------------------------------


def _in_progress(m: Matrix, *, ready: bool = True) -> int:
    """A claim worked by the journey's checker (with a verdict and evidence when ready)."""
    return m.journey.to_state("in_progress", ready=ready)


def test_a_checker_cannot_work_another_checkers_claim(matrix: Matrix) -> None:
    m, j = matrix, matrix.journey
    cid = _in_progress(m)
    other = j.checker2
    before = j.get(cid)
    r = m.client.post(f"/api/v1/claims/{cid}/actions/release", headers=other.headers)
    assert r.status_code == 403, r.text
    r = m.client.post(f"/api/v1/claims/{cid}/actions/submit", headers=other.headers)
    assert r.status_code == 403, r.text
    r = m.client.patch(f"/api/v1/claims/{cid}", json={"claimant": "someone"}, headers=other.headers)
    assert r.status_code == 403, r.text
    r = m.client.put(
        f"/api/v1/claims/{cid}/verdict", json={"rating": "confirmed", "summary": "Mine now."}, headers=other.headers
    )
    assert r.status_code == 403, r.text
    after = j.get(cid)
    assert after["version"] == before["version"] and after["verdict"] == before["verdict"]
    assert after["state"] == "in_progress" and after["assignee_id"] == j.checker.id
    # The assignee may do each of these.
    r = m.client.patch(f"/api/v1/claims/{cid}", json={"claimant": "the governor"}, headers=j.checker.headers)
    assert r.status_code == 200, r.text
    j.verdict(cid, j.checker, rating="confirmed")
    j.act(cid, "submit", j.checker)


def test_the_assignee_may_release_but_not_make_a_check_public(matrix: Matrix) -> None:
    m, j = matrix, matrix.journey
    cid = _in_progress(m, ready=False)
    r = m.client.patch(f"/api/v1/claims/{cid}", json={"public": True}, headers=j.checker.headers)
    assert r.status_code == 403, r.text
    r = m.client.patch(f"/api/v1/claims/{cid}", json={"public": True}, headers=j.editor.headers)
    assert r.status_code == 200, r.text
    assert j.act(cid, "release", j.checker)["state"] == "queued"


def test_a_contributor_edits_only_their_own_claim_and_only_while_submitted(matrix: Matrix) -> None:
    m, j = matrix, matrix.journey
    mine = int(j.create(j.contributor)["id"])
    other = m.desk.person("contributor")
    r = m.client.patch(f"/api/v1/claims/{mine}", json={"claimant": "a stranger"}, headers=other.headers)
    assert r.status_code == 403, r.text
    r = m.client.patch(f"/api/v1/claims/{mine}", json={"claimant": "the mayor"}, headers=j.contributor.headers)
    assert r.status_code == 200, r.text
    j.act(mine, "queue", j.editor)
    r = m.client.patch(f"/api/v1/claims/{mine}", json={"claimant": "the mayor"}, headers=j.contributor.headers)
    assert r.status_code == 403, r.text
    # A viewer edits nothing, not even with a key that reads the claim.
    r = m.client.patch(f"/api/v1/claims/{mine}", json={"claimant": "x"}, headers=j.viewer.headers)
    assert r.status_code == 403, r.text


def test_evidence_rules_for_contributors_and_authors(matrix: Matrix) -> None:
    m, j = matrix, matrix.journey
    mine = int(j.create(j.contributor)["id"])
    stranger = m.desk.person("contributor")
    note = {"kind": "note", "note": "The reporter's screenshot."}
    r = m.client.post(f"/api/v1/claims/{mine}/evidence", json=note, headers=stranger.headers)
    assert r.status_code == 403, r.text
    r = m.client.post(f"/api/v1/claims/{mine}/evidence", json=note, headers=j.contributor.headers)
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    # Only its author or an editor retracts it.
    for who in (stranger, j.checker2):
        r = m.client.post(f"/api/v1/evidence/{eid}/retract", json={"reason": "not mine"}, headers=who.headers)
        assert r.status_code == 403, r.text
    r = m.client.post(f"/api/v1/evidence/{eid}/retract", json={"reason": "Wrong file."}, headers=j.contributor.headers)
    assert r.status_code == 200, r.text
    # Once the claim is queued, the contributor adds nothing more.
    j.act(mine, "queue", j.editor)
    r = m.client.post(f"/api/v1/claims/{mine}/evidence", json=note, headers=j.contributor.headers)
    assert r.status_code == 403, r.text


def test_four_eyes_on_approval(matrix: Matrix) -> None:
    m, j = matrix, matrix.journey
    cid = int(j.create()["id"])
    j.act(cid, "queue", j.editor)
    j.act(cid, "start", j.editor)  # the editor works it and writes the verdict
    j.verdict(cid, j.editor)
    j.evidence(cid, j.editor)
    j.act(cid, "submit", j.editor)
    r = m.client.post(f"/api/v1/claims/{cid}/actions/approve", headers=j.editor.headers)
    assert r.status_code == 403, r.text
    assert j.get(cid)["state"] == "in_review"
    assert j.act(cid, "approve", j.editor2)["state"] == "published"


def test_only_the_poster_or_an_editor_accepts_an_articles_candidate(matrix: Matrix) -> None:
    m, j = matrix, matrix.journey
    article = m.client.post(
        "/api/v1/intake/articles",
        json={"text": "The agency said up to 9,000 homes were flooded. The mayor said 61 people died."},
        headers=j.contributor.headers,
    )
    assert article.status_code == 201, article.text
    aid = article.json()["id"]
    stranger = m.desk.person("contributor")
    r = m.client.post(f"/api/v1/intake/articles/{aid}/candidates/0/accept", headers=stranger.headers)
    assert r.status_code in (403, 404), r.text  # another's article is not theirs to see
    r = m.client.post(f"/api/v1/intake/articles/{aid}/candidates/0/accept", headers=j.contributor.headers)
    assert r.status_code == 201, r.text
    r = m.client.post(f"/api/v1/intake/articles/{aid}/candidates/1/accept", headers=j.editor.headers)
    assert r.status_code == 201, r.text


def test_no_admin_route_answers_below_admin_even_for_own_things(matrix: Matrix) -> None:
    """A user may not read or mint keys for themselves through the admin routes."""
    m = matrix
    for role in ("viewer", "editor"):
        me = m.people[role]
        r = m.client.get(f"/api/v1/users/{me.id}/api-keys", headers=me.headers)
        assert r.status_code == 403, r.text
        r = m.client.post(f"/api/v1/users/{me.id}/api-keys", json={}, headers=me.headers)
        assert r.status_code == 403, r.text
        r = m.client.patch(f"/api/v1/users/{me.id}", json={"role": "admin"}, headers=me.headers)
        assert r.status_code == 403, r.text
        assert m.client.get("/api/v1/me", headers=me.headers).json()["role"] == role


# --- the order of checks (docs/api.md) ---------------------------------------------------------


def test_the_order_of_checks_on_a_verdict(matrix: Matrix) -> None:
    """401 -> 403 role -> 422 shape -> 404 -> 412 -> 409 state -> 403 object rule -> 422 value.
    Each step sends a request that would fail every later check too, so only the order can pass it."""
    m, j = matrix, matrix.journey
    worked = _in_progress(m, ready=False)
    in_review = j.to_state("in_review")
    version = j.get(worked)["version"]
    bad, good = {"rating": 5}, {"rating": "no-such-rating", "summary": "What the evidence shows."}
    other = j.checker2.headers
    steps: list[tuple[str, dict[str, str], Any, Any, int]] = [
        (MISSING, {}, bad, None, 401),
        (MISSING, j.viewer.headers, bad, None, 403),
        (MISSING, other, bad, None, 422),
        (MISSING, other, good, None, 404),
        (str(worked), other, good, '"0"', 412),
        (str(in_review), other, good, None, 409),
        (str(worked), other, good, f'"{version}"', 403),
        (str(worked), j.checker.headers, good, f'"{version}"', 422),
    ]
    for cid, headers, body, if_match, want in steps:
        extra = {"If-Match": if_match} if if_match else {}
        r = m.client.put(f"/api/v1/claims/{cid}/verdict", json=body, headers={**headers, **extra})
        assert r.status_code == want, (cid, headers == other, body, if_match, r.status_code, r.text)
    assert j.get(worked)["version"] == version  # nothing changed on the way


def test_the_order_of_checks_on_an_action(matrix: Matrix) -> None:
    """The same order on POST .../actions/submit; then the precondition (409 missing) after the
    object rule, and a missing reason (422) last of all."""
    m, j = matrix, matrix.journey
    worked = _in_progress(m, ready=False)  # no verdict, no evidence
    queued = j.to_state("queued")
    version = j.get(worked)["version"]
    other = j.checker2.headers
    steps: list[tuple[str, dict[str, str], Any, Any, int]] = [
        (MISSING, {}, {"x": 1}, None, 401),
        (MISSING, j.contributor.headers, {"x": 1}, None, 403),
        (MISSING, other, {"x": 1}, None, 422),
        (MISSING, other, None, None, 404),
        (str(worked), other, None, '"0"', 412),
        (str(queued), other, None, None, 409),
        (str(worked), other, None, f'"{version}"', 403),
        (str(worked), j.checker.headers, None, f'"{version}"', 409),
    ]
    for cid, headers, body, if_match, want in steps:
        extra = {"If-Match": if_match} if if_match else {}
        r = m.client.post(f"/api/v1/claims/{cid}/actions/submit", json=body, headers={**headers, **extra})
        assert r.status_code == want, (cid, body, if_match, r.status_code, r.text)
    assert r.json()["missing"] == ["verdict", "evidence"]
    r = m.client.post(f"/api/v1/claims/{queued}/actions/reject", json={}, headers=j.editor.headers)
    assert r.status_code == 422, r.text
    assert j.get(queued)["state"] == "queued"
    # An action the desk does not have is 404 whatever the body, like a route that does not exist.
    r = m.client.post(f"/api/v1/claims/{queued}/actions/teleport", json={"x": 1}, headers=j.editor.headers)
    assert r.status_code == 404, r.text


def test_adding_evidence_checks_the_claim_before_reading_the_body(matrix: Matrix) -> None:
    """The one documented exception: an upload is never read for a claim that cannot take it, so
    POST .../evidence answers 404/409/403 before it looks at the body (then 413, 415 or 422)."""
    m, j = matrix, matrix.journey
    published = m.ids["claim_id"]
    worked = _in_progress(m, ready=False)
    junk = b"{not json"
    ctype = {"Content-Type": "application/json"}
    steps = [
        (MISSING, {}, 401),
        (MISSING, j.viewer.headers, 403),
        (MISSING, j.checker.headers, 404),
        (published, j.checker.headers, 409),
        (str(worked), m.desk.person("contributor").headers, 403),
        (str(worked), j.checker.headers, 422),
    ]
    for cid, headers, want in steps:
        r = m.client.post(f"/api/v1/claims/{cid}/evidence", content=junk, headers={**headers, **ctype})
        assert r.status_code == want, (cid, r.status_code, r.text)
