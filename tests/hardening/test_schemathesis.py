"""Fuzzing every operation of /openapi.json with schemathesis, as an admin, over the ASGI app.

Each operation gets a handful of generated requests (valid and invalid ones), some aimed at rows that
exist (claims in every state, evidence, an article, a webhook endpoint and its delivery) and some at
ids that do not. Every answer must be no 5xx, a documented status code, a documented content type,
and a body true to the documented schema. Derandomized so CI sees the same cases every run; no
example database is written. No worker runs, so no webhook is ever sent (and the test checks it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from app.main import create_app
from app.webhooks.models import WebhookAttempt
from tests.conftest import Desk, make_settings
from tests.helpers import Journey

pytestmark = pytest.mark.slow

# CI runs a few per operation; CLAIMDESK_FUZZ_EXAMPLES=50 digs deeper by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("CLAIMDESK_FUZZ_EXAMPLES", "6"))
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.response_headers_conformance,
]
ACTIONS = ["queue", "reject", "restore", "start", "release", "submit", "request_changes", "approve", "reopen"]
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _seed(client: TestClient, desk: Desk) -> tuple[Journey, dict[str, list[str]]]:
    """Rows in many shapes, and the ids to aim path parameters at."""
    j = Journey(client, desk)
    claims = {state: j.to_state(state) for state in ("submitted", "rejected", "queued", "in_progress", "in_review")}
    published = j.create(public=True)["id"]
    j.act(published, "queue", j.editor)
    j.act(published, "start", j.checker)
    j.verdict(published, j.checker)
    j.evidence(published, j.checker)
    j.act(published, "submit", j.checker)
    j.act(published, "approve", j.editor)
    claims["published"] = published
    ready = j.to_state("in_progress", ready=True)
    upload = client.post(
        f"/api/v1/claims/{ready}/evidence",
        files={"file": ("pixel.png", PNG, "image/png")},
        data={"visibility": "public", "stance": "supports"},
        headers=j.checker.headers,
    )
    assert upload.status_code == 201, upload.text
    retracted = j.evidence(ready, j.checker)["id"]
    r = client.post(
        f"/api/v1/evidence/{retracted}/retract", json={"reason": "Wrong archive."}, headers=j.checker.headers
    )
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/claims/{ready}/comments", json={"body": "Looks solid."}, headers=j.checker.headers)
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/claims/{ready}/related/{claims['queued']}", json={}, headers=j.editor.headers)
    assert r.status_code == 201, r.text
    article = client.post(
        "/api/v1/intake/articles",
        json={"text": 'The governor said 40 people died. "Up to 9,000 homes were flooded," an agency said.'},
        headers=j.contributor.headers,
    )
    assert article.status_code == 201, article.text
    hook = client.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}, headers=j.admin.headers
    )
    assert hook.status_code == 201, hook.text
    ping = client.post(f"/api/v1/webhooks/{hook.json()['id']}/ping", headers=j.admin.headers)
    assert ping.status_code == 202, ping.text
    keys = client.get(f"/api/v1/users/{j.viewer.id}/api-keys", headers=j.admin.headers).json()["items"]
    evidence = client.get(f"/api/v1/claims/{ready}/evidence", headers=j.viewer.headers).json()["items"]
    pools = {
        "claim_id": [str(c) for c in [*claims.values(), ready]],
        "other_id": [str(claims["queued"]), str(claims["published"])],
        "evidence_id": [str(e["id"]) for e in evidence],
        "article_id": [str(article.json()["id"])],
        "index": ["0", "1"],
        "action": ACTIONS,
        # Never the admin's own id or key: the fuzzer keeps its powers to the end.
        "user_id": [str(j.checker.id), str(j.viewer.id)],
        "key_id": [str(k["id"]) for k in keys],
        "webhook_id": [str(hook.json()["id"])],
        "delivery_id": [str(ping.json()["id"])],
    }
    return j, pools


def _order(operation: Any) -> tuple[int, str]:
    """Reads first, then changes, then what removes or demotes (so earlier cases still find rows)."""
    method, path = operation.method.upper(), operation.path
    if method == "DELETE" or path.endswith("/purge") or path == "/api/v1/users/{user_id}":
        return 2, path
    return (0 if method in ("GET", "HEAD") else 1), path


def _strategy(operation: Any, headers: dict[str, str], pools: dict[str, list[str]]) -> Any:
    names = [p.name for p in operation.path_parameters]
    branches = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE, headers=headers)]
    with contextlib.suppress(Exception):  # some operations have nothing to negate
        branches.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, headers=headers))
    if names and all(name in pools for name in names):
        combos = itertools.islice(itertools.product(*(pools[name] for name in names)), 12)
        branches.extend(
            operation.as_strategy(
                generation_mode=GenerationMode.POSITIVE,
                headers=headers,
                path_parameters=dict(zip(names, combo, strict=True)),
            )
            for combo in combos
        )
    return st.one_of(*branches)


def _fuzz_one(operation: Any, strategy: Any, failures: list[str]) -> int:
    """Runs one operation's cases; records each failing check; returns how many requests it sent."""
    label = f"{operation.method.upper()} {operation.path}"
    sent = [0]

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        sent[0] += 1
        response = case.call()
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # schemathesis raises a FailureGroup (an exception group)
            failures.append(f"{label}: {str(exc)[:1500]}")

    try:
        run()
    except Unsatisfiable:
        failures.append(f"{label}: no case could be generated")
    return sent[0]


def _fuzz(app: Any, admin_headers: dict[str, str], pools: dict[str, list[str]]) -> tuple[list[str], int]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
    assert len(operations) >= 50, len(operations)
    failures: list[str] = []
    calls = 0
    for operation in operations:
        calls += _fuzz_one(operation, _strategy(operation, admin_headers, pools), failures)
    return failures, calls


def test_every_operation_answers_as_documented(db_url: str, tmp_path: Path, database: Any) -> None:
    app = create_app(make_settings(db_url, tmp_path), database, start_worker=False)
    app.state.owns_database = False
    assert app.state.start_worker is False
    started = time.monotonic()
    with TestClient(app, raise_server_exceptions=False) as client:
        journey, pools = _seed(client, Desk(database))
        failures, calls = _fuzz(app, journey.admin.headers, pools)
        # The admin still holds its powers at the end, so the late cases were not all 401/403.
        assert client.get("/api/v1/users", headers=journey.admin.headers).status_code == 200
    with database.read_session() as session:
        attempts = session.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt))
    assert attempts == 0, "a webhook was sent while fuzzing"
    assert calls >= 200, calls
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    if EXAMPLES_PER_OPERATION <= 6:
        assert time.monotonic() - started < 120
