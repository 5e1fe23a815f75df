"""Keyset pagination with opaque cursors (``?limit=&cursor=``) and RFC 8288 Link headers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Query, Request, Response

from app.errors import InvalidCursor
from app.validation import MAX_ID

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (max 500).")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="Opaque cursor from a previous page's next_cursor.")
]


def encode_cursor(kind: str, position: Any) -> str:
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str) -> Any:
    """The position stored in a cursor of this ``kind``; None when there is no cursor."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or data.get("k") != kind or "p" not in data:
            raise ValueError("wrong shape")
        return data["p"]
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this list handed out.") from exc


def int_position(cursor: str | None, kind: str) -> int | None:
    position = decode_cursor(cursor, kind)
    if position is None:
        return None
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= MAX_ID:
        raise InvalidCursor("The cursor is not one this list handed out.")
    return position


def set_link_header(request: Request, response: Response, next_cursor: str | None) -> None:
    if next_cursor is None:
        return
    url = request.url.include_query_params(cursor=next_cursor)
    response.headers["Link"] = f'<{url}>; rel="next"'


def finish_page(
    request: Request,
    response: Response,
    rows: list[T],
    *,
    limit: int,
    kind: str,
    position: Callable[[T], Any] = lambda row: row.id,  # type: ignore[attr-defined]
) -> tuple[list[T], str | None]:
    """Services fetch ``limit + 1`` rows; keep ``limit``, and when there were more, hand out a cursor
    at the last row kept and say so in a Link header."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    cursor = encode_cursor(kind, position(rows[-1]))
    set_link_header(request, response, cursor)
    return rows, cursor
