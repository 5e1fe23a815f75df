"""The OpenAPI document, with the answers every route shares written down once.

Routes document what is particular to them. What follows from the application's own machinery is
added here, so that no route can forget it and the document stays true to what is answered:

* every error is ``application/problem+json`` and has the ``Problem`` shape (FastAPI's default 422,
  ``application/json`` with its own ``HTTPValidationError`` shape, is replaced, since our handler
  never answers that);
* a route that takes ``?cursor=`` answers 400 to a cursor it did not hand out;
* a route that takes a body answers 422 to one it cannot parse or validate, and 413 to a body over
  CLAIMDESK_MAX_JSON_BYTES (BodyLimitMiddleware; uploads have their own limit);
* a write with an API key answers 429, with Retry-After, once the key's write budget is spent
  (CLAIMDESK_RATE_LIMIT_WRITES, app.ratelimit).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

PROBLEM_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem. Other members a client can act on may follow "
    "(`errors`, `allowed_actions`, `missing`, `current_version`...).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path the problem happened on."},
        "errors": {
            "type": "array",
            "description": "422: each offending field.",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

BAD_CURSOR = "A cursor this list did not hand out"
BAD_BODY = "The body is not valid JSON, or not valid input; `errors` lists the fields"
TOO_LARGE = "The body is over CLAIMDESK_MAX_JSON_BYTES (uploads: CLAIMDESK_MAX_UPLOAD_BYTES)"
RATE_LIMITED = "The key's write budget is spent (CLAIMDESK_RATE_LIMIT_WRITES)"
WRITE_METHODS = ("post", "put", "patch", "delete")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {"schema": dict(PROBLEM_REF)}}}


def _is_error(status: str) -> bool:
    return status.isdigit() and int(status) >= 400


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Adds the shared answers to a generated document (in place) and returns it."""
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            if method in WRITE_METHODS and operation.get("security"):
                limited = _problem(RATE_LIMITED)
                limited["headers"] = {
                    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 0}}
                }
                responses.setdefault("429", limited)
            params = operation.get("parameters", [])
            if any(p.get("in") == "query" and p.get("name") == "cursor" for p in params):
                responses.setdefault("400", _problem(BAD_CURSOR))
            if "requestBody" in operation:
                responses.setdefault("413", _problem(TOO_LARGE))
                responses.setdefault("422", _problem(BAD_BODY))
            for status, response in responses.items():
                if not _is_error(status):
                    continue
                content = dict(response.get("content") or {})
                if "HTTPValidationError" in str(content.get("application/json", "")):
                    del content["application/json"]  # FastAPI's default 422, which we never answer
                    response["description"] = "Invalid input; `errors` lists the fields"
                content.setdefault(PROBLEM_TYPE, {}).setdefault("schema", dict(PROBLEM_REF))
                response["content"] = content
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    if "HTTPValidationError" not in str(document.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def install(app: FastAPI) -> None:
    generate = app.openapi  # FastAPI's own, which builds the document once and keeps it

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
