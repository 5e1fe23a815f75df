"""Abuse limits on the API surface, and what the fuzzer found about bodies and errors.

- every list route refuses ?limit= above 500 (and below 1) with a 422 problem;
- POST /api/v1/claims:batch takes at most 1,000 items: more is 422 naming `items`;
- every route that takes a JSON body answers 413 to one over CLAIMDESK_MAX_JSON_BYTES;
- a body that is not even text (invalid UTF-8) is 422 like any other malformed JSON, not 400;
- every entry of a 422's `errors` has loc, msg and type.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.pagination import MAX_LIMIT
from tests.conftest import Desk, make_settings

SMALL_JSON_LIMIT = 2048


@pytest.fixture
def small_app(db_url: str, tmp_path: Path, database: Any) -> Any:
    application = create_app(make_settings(db_url, tmp_path, max_json_bytes=SMALL_JSON_LIMIT), database)
    application.state.owns_database = False
    application.state.start_worker = False
    return application


@pytest.fixture
def small_client(small_app: Any) -> Any:
    with TestClient(small_app, raise_server_exceptions=False) as c:
        yield c


def _filled(path: str) -> str:
    """A concrete URL for a route template (the ids need not exist: the limits come first)."""
    return re.sub(r"\{[^}]+\}", "1", path)


def _list_routes(app: Any) -> list[tuple[str, str]]:
    document = app.openapi()
    return [
        ("GET", path)
        for path, item in document["paths"].items()
        if "get" in item and any(p["name"] == "limit" for p in item["get"].get("parameters", []))
    ]


def _body_routes(app: Any) -> list[tuple[str, str]]:
    document = app.openapi()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                found.append((method.upper(), path))
    return found


@pytest.fixture
def doc_app(tmp_path: Path) -> Any:
    """An app for reading its OpenAPI document only (no database is opened)."""
    return create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path), start_worker=False)


def test_the_lists_are_the_ones_expected(doc_app: Any) -> None:
    """Guards the iteration below: if a list lost its limit parameter, it would silently drop out."""
    paths = {p for _, p in _list_routes(doc_app)}
    assert {
        "/api/v1/claims",
        "/api/v1/queue",
        "/api/v1/claims/{claim_id}/events",
        "/api/v1/claims/{claim_id}/comments",
        "/api/v1/claims/{claim_id}/evidence",
        "/api/v1/users",
        "/api/v1/users/{user_id}/api-keys",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{webhook_id}/deliveries",
        "/api/v1/intake/articles",
        "/public/fact-checks",
    } <= paths


def test_every_list_refuses_a_page_over_the_maximum(app: Any, client: TestClient, desk: Desk) -> None:
    admin = desk.person("admin")
    for method, path in _list_routes(app):
        url = _filled(path)
        for bad in (MAX_LIMIT + 1, 0, 10**12):
            r = client.request(method, url, params={"limit": bad}, headers=admin.headers)
            assert r.status_code == 422, (path, bad, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["errors"][0]["loc"] == ["query", "limit"], (path, r.json())
        ok = client.request(method, url, params={"limit": MAX_LIMIT}, headers=admin.headers)
        assert ok.status_code in (200, 404), (path, ok.status_code, ok.text)
        # Documented as such: the schema says the maximum.
        op = app.openapi()["paths"][path]["get"]
        limit = next(p for p in op["parameters"] if p["name"] == "limit")
        assert limit["schema"]["maximum"] == MAX_LIMIT and limit["schema"]["minimum"] == 1, path


def test_a_batch_over_1000_items_is_refused_whole(client: TestClient, desk: Desk) -> None:
    contributor = desk.person("contributor")
    items = [{"text": f"Claim number {i}"} for i in range(1001)]
    r = client.post("/api/v1/claims:batch", json={"items": items}, headers=contributor.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["body", "items"]
    listed = client.get("/api/v1/claims", headers=contributor.headers).json()
    assert listed["items"] == []  # nothing of it was created
    # 1,000 is taken: each item is then judged on its own (these are all invalid, so nothing is
    # written and the test stays quick).
    r = client.post("/api/v1/claims:batch", json={"items": [{"text": ""}] * 1000}, headers=contributor.headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 1000 and {x["status"] for x in results} == {422}
    r = client.post("/api/v1/claims:batch", json={"items": []}, headers=contributor.headers)
    assert r.status_code == 422, r.text


def test_every_json_route_refuses_a_body_over_the_limit(small_app: Any, small_client: TestClient, desk: Desk) -> None:
    admin = desk.person("admin")
    # Claim 1 exists (and takes evidence), so the upload route, which checks the claim before it
    # reads a byte, reads this body too.
    r = small_client.post("/api/v1/claims", json={"text": "A claim"}, headers=admin.headers)
    assert r.status_code == 201 and r.json()["id"] == 1, r.text
    routes = _body_routes(small_app)
    assert len(routes) >= 20, routes
    oversize = b'{"text": "' + b"x" * (SMALL_JSON_LIMIT + 10) + b'"}'
    for method, path in routes:
        url = _filled(path)
        r = small_client.request(
            method, url, content=oversize, headers={**admin.headers, "Content-Type": "application/json"}
        )
        assert r.status_code == 413, (method, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", (method, path)
        assert r.json()["status"] == 413
        # And without a Content-Length (chunked): the bytes are counted as they arrive.
        r = small_client.request(
            method,
            url,
            content=iter([oversize[:1000], oversize[1000:]]),
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 413, ("chunked", method, path, r.status_code, r.text)
        # Refused unread, before the key is even looked at.
        r = small_client.request(method, url, content=oversize, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, ("no key", method, path, r.status_code, r.text)
        # Documented on the operation.
        assert "413" in small_app.openapi()["paths"][path][method.lower()]["responses"], (method, path)


def test_a_body_that_is_not_text_is_422_like_any_malformed_json(client: TestClient, desk: Desk) -> None:
    """Found by schemathesis: FastAPI answered 400 "There was an error parsing the body" (undocumented)
    to invalid UTF-8, while malformed but decodable JSON got 422."""
    contributor = desk.person("contributor")
    for body in (b"\xff\xfe{", b'{"text": "a'):
        r = client.post(
            "/api/v1/claims", content=body, headers={**contributor.headers, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["type"].endswith("/validation-error")
        assert problem["errors"][0]["type"] == "json_invalid"
        assert problem["errors"][0]["loc"][0] == "body"


def test_every_422_error_entry_has_loc_msg_and_type(client: TestClient, desk: Desk) -> None:
    """Found by schemathesis against the documented Problem schema: some service-raised 422s listed
    fields without a message."""
    admin = desk.person("admin")
    r = client.post(
        f"/api/v1/users/{admin.id}/api-keys", json={"expires_at": "2001-01-01T00:00:00Z"}, headers=admin.headers
    )
    assert r.status_code == 422, r.text
    for entry in r.json()["errors"]:
        assert set(entry) >= {"loc", "msg", "type"}, entry
        assert entry["msg"]
    assert r.json()["errors"][0]["loc"] == ["body", "expires_at"]


def test_the_document_says_errors_are_problems(doc_app: Any) -> None:
    """Every error response in /openapi.json is problem+json with the Problem schema; FastAPI's own
    HTTPValidationError (a shape we never answer) is gone; every cursor list documents 400."""
    document = doc_app.openapi()
    assert "HTTPValidationError" not in str(document)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    content = response.get("content", {})
                    assert "application/problem+json" in content, (method, path, status)
                    assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}, (
                        method,
                        path,
                        status,
                    )
                    assert "application/json" not in content, (method, path, status)
            if any(p["name"] == "cursor" for p in operation.get("parameters", [])):
                assert "400" in operation["responses"], (method, path)


def test_every_write_with_a_key_documents_its_429(doc_app: Any) -> None:
    document = doc_app.openapi()
    writes = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("post", "put", "patch", "delete") and operation.get("security"):
                writes += 1
                limited = operation["responses"].get("429")
                assert limited is not None, (method, path)
                assert "Retry-After" in limited["headers"], (method, path)
    assert writes >= 25


def test_a_429_is_what_the_document_says(db_url: str, tmp_path: Path, database: Any) -> None:
    application = create_app(make_settings(db_url, tmp_path, rate_limit_writes="2/minute"), database)
    application.state.owns_database = False
    application.state.start_worker = False
    person = Desk(database).person("contributor")
    with TestClient(application, raise_server_exceptions=False) as c:
        answers = [c.post("/api/v1/claims", json={"text": f"Claim {i}"}, headers=person.headers) for i in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    limited = answers[-1]
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) >= 0
    assert "429" in application.openapi()["paths"]["/api/v1/claims"]["post"]["responses"]
