"""Reading desk forms into the API's own request models, so a form is checked by the same rules as
the JSON body of the matching API route (lengths, patterns, known events, password length...).

``validated(Model, data)`` builds the model or raises ``Unprocessable`` naming the offending fields,
which ``problem_of`` turns into ``aria-invalid`` on those inputs. ``utc_field`` reads a
``datetime-local`` input as UTC.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import Unprocessable

M = TypeVar("M", bound=BaseModel)

# Field names as the person reads them, for the summary line of a refusal.
_LABELS = {
    "text": "text",
    "url": "URL",
    "outlet": "outlet",
    "published_at": "published",
    "language": "language",
    "claimant": "claimant",
    "priority": "priority",
    "tags": "tags",
    "email": "email",
    "name": "name",
    "role": "role",
    "password": "password",
    "expires_at": "expires",
    "events": "events",
    "description": "description",
    "format": "format",
    "since": "since",
}


def validated(model: type[M], data: dict[str, Any]) -> M:
    """``model`` built from ``data`` (fields left out when None), or a 422 naming each bad field."""
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        parts = []
        for err in errors:
            field = str(err["loc"][1]) if len(err["loc"]) > 1 else ""
            msg = str(err["msg"])
            parts.append(f"{_LABELS.get(field, field)}: {msg}" if field else msg)
        raise Unprocessable("Check the highlighted fields. " + "; ".join(parts) + ".", errors=errors) from exc


def utc_field(value: str | None) -> str | None:
    """A ``datetime-local`` value (no zone) read as UTC; a value with a zone is left as typed."""
    if not value:
        return None
    if value.endswith("Z") or "+" in value[10:] or "-" in value[10:]:
        return value
    return value + "Z"
