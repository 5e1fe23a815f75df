"""Every answer carries the security headers of app.observability (and HTML a Content-Security-Policy):
JSON, problem+json errors of every kind, public pages, evidence downloads, operations routes, docs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.observability import SECURITY_HEADERS
from tests.conftest import make_settings
from tests.evidence.samples import png
from tests.helpers import Journey

BUDGET = 20


@pytest.fixture
def db_url(sqlite_template: Path, tmp_path: Path) -> str:
    # Headers do not depend on the database; one backend is enough here.
    path = tmp_path / "claimdesk.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path, rate_limit_writes=f"{BUDGET}/minute", max_json_bytes=4096)


def _check(label: str, r: httpx.Response, problems: list[str]) -> None:
    for name, value in SECURITY_HEADERS:
        got = r.headers.get(name.decode())
        # The desk's own pages may keep the referrer within the desk: never sent to another origin either.
        allowed = {value.decode(), "same-origin"} if name == b"referrer-policy" else {value.decode()}
        if got not in allowed:
            problems.append(f"{label} ({r.status_code}): {name.decode()} is {got!r}")
    if not r.headers.get("x-request-id"):
        problems.append(f"{label} ({r.status_code}): no x-request-id")
    if r.headers.get("content-type", "").startswith("text/html"):
        csp = r.headers.get("content-security-policy", "")
        if "default-src" not in csp:
            problems.append(f"{label} ({r.status_code}): HTML with CSP {csp!r}")


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Every route with its full path, descending into included routers (FastAPI keeps them nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes, prefix + (getattr(route.include_context, "prefix", "") or ""))
        else:
            yield prefix + getattr(route, "path", ""), set(getattr(route, "methods", None) or ())


def test_security_headers_on_every_kind_of_answer(app, desk) -> None:
    @app.get("/__test_boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("an unexpected failure for the header test")

    seen: dict[str, httpx.Response] = {}
    with TestClient(app, raise_server_exceptions=False) as client:
        j = Journey(client, desk)

        def get(label: str, path: str, **kw) -> httpx.Response:
            seen[label] = client.get(path, **kw)
            return seen[label]

        # A published public fact-check with a public file.
        created = client.post(
            "/api/v1/claims",
            json={"text": "The dam holds 9 billion litres", "public": True},
            headers=j.contributor.headers,
        )
        seen["POST claim 201"] = created
        cid = created.json()["id"]
        j.act(cid, "queue", j.editor)
        j.act(cid, "start", j.checker)
        up = client.post(
            f"/api/v1/claims/{cid}/evidence",
            files={"file": ("chart.png", png(), "image/png")},
            data={"visibility": "public", "stance": "refutes"},
            headers=j.checker.headers,
        )
        assert up.status_code == 201, up.text
        seen["upload 201"] = up
        eid = up.json()["id"]
        j.verdict(cid, j.checker)
        j.act(cid, "submit", j.checker)
        j.act(cid, "approve", j.editor)

        viewer = j.viewer.headers
        get("API JSON", f"/api/v1/claims/{cid}", headers=viewer)
        get("API list", "/api/v1/claims?limit=1", headers=viewer)
        get("401", "/api/v1/claims")
        get("404 unknown claim", "/api/v1/claims/987654", headers=viewer)
        get("404 no route", "/no/such/route")
        seen["405"] = client.put("/api/v1/claims", json={}, headers=viewer)
        seen["413"] = client.post("/api/v1/claims", json={"text": "x" * 8000}, headers=j.contributor.headers)
        seen["422"] = client.post("/api/v1/claims", json={"bogus": True}, headers=j.contributor.headers)
        hammer = desk.person("contributor")
        for _ in range(BUDGET + 1):
            seen["429"] = client.post("/api/v1/claims", json={"text": "again"}, headers=hammer.headers)
        get("500", "/__test_boom")
        get("public page", f"/public/fact-checks/{cid}")
        get("public feed", "/public/fact-checks")
        get("rating scale HTML", "/public/rating-scale", headers={"Accept": "text/html"})
        get("public file", f"/public/evidence/{eid}/content")
        content = get("download", f"/api/v1/evidence/{eid}/content", headers=viewer)
        get("download range", f"/api/v1/evidence/{eid}/content", headers={**viewer, "Range": "bytes=0-9"})
        get("download 416", f"/api/v1/evidence/{eid}/content", headers={**viewer, "Range": "bytes=99999-"})
        get(
            "download 304",
            f"/api/v1/evidence/{eid}/content",
            headers={**viewer, "If-None-Match": content.headers["etag"]},
        )
        seen["download HEAD"] = client.head(f"/api/v1/evidence/{eid}/content", headers=viewer)
        for path in ("/metrics", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect", "/healthz", "/readyz"):
            get(path, path)

        # And every parameterless GET route the app has (the browser desk's pages among them, signed
        # out: a redirect to sign-in must carry the headers too).
        parameterless = [p for p, methods in _routes(app.routes) if "GET" in methods and "{" not in p]
        assert len(parameterless) >= 15 and "/api/v1/claims" in parameterless
        for path in parameterless:
            if path not in seen:
                get(path, path, headers={**j.admin.headers, "Accept": "text/html"}, follow_redirects=False)

    expected = {
        "POST claim 201": 201,
        "401": 401,
        "404 unknown claim": 404,
        "404 no route": 404,
        "405": 405,
        "413": 413,
        "422": 422,
        "429": 429,
        "500": 500,
        "public page": 200,
        "download": 200,
        "download range": 206,
        "download 416": 416,
        "download 304": 304,
        "/docs": 200,
        "/metrics": 200,
    }
    assert {k: seen[k].status_code for k in expected} == expected
    for label in ("401", "404 unknown claim", "404 no route", "405", "413", "422", "429", "500"):
        assert seen[label].headers["content-type"].startswith("application/problem+json"), label
    assert seen["public page"].headers["content-type"].startswith("text/html")
    assert seen["/docs"].headers["content-type"].startswith("text/html")

    problems: list[str] = []
    for label, response in seen.items():
        _check(label, response, problems)
    assert problems == [], "\n".join(problems)
    assert len(seen) >= 25, sorted(seen)
