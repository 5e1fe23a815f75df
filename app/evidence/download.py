"""Serving stored evidence bytes: ``GET /evidence/{id}/content``.

``blob_response`` does the HTTP part: conditional requests (``If-None-Match`` -> 304), byte ranges
(``Range`` / ``If-Range`` -> 206 or 416), and the headers that stop a browser from treating a
hostile upload as part of our site (attachment disposition, ``nosniff``, a sandboxing CSP for HTML).

Range policy: one range is honoured. A header asking for several ranges is ignored and the whole
body is sent with 200, which RFC 9110 allows (a server may ignore Range) and saves us from building
``multipart/byteranges`` responses nobody here needs. Syntactically invalid headers and unknown
units are ignored the same way. 416 is only for a single, well-formed range that misses the body.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import quote

import anyio.to_thread
from starlette.responses import Response, StreamingResponse

from app.errors import RangeNotSatisfiable
from app.evidence.sniff import ALLOWED_MEDIA_TYPES
from app.evidence.storage import BlobNotFound, BlobStore
from app.evidence.upload import safe_filename

if TYPE_CHECKING:
    from starlette.requests import Request

HTML_CSP = "default-src 'none'; sandbox"
DEFAULT_CACHE_CONTROL = "private, no-cache"

# For the OpenAPI document: a download is answered in the media type sniffed at upload, which is
# always one of the allowed ones.
FILE_CONTENT: dict[str, Any] = {
    media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in sorted(ALLOWED_MEDIA_TYPES)
}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file, in the media type read from its bytes at upload", "content": FILE_CONTENT},
    206: {"description": "Part of the file (Range)", "content": FILE_CONTENT},
    304: {"description": "Not modified (If-None-Match)"},
    416: {"description": "Range not satisfiable", "content": {"application/problem+json": {}}},
}

__all__ = [
    "HTML_CSP",
    "ByteRange",
    "blob_response",
    "content_disposition",
    "etag_for",
    "etag_matches",
    "parse_range",
]


class ByteRange(NamedTuple):
    status: int  # 200 (whole body) or 206
    start: int
    end: int  # inclusive; -1 for a whole empty body

    @property
    def length(self) -> int:
        return self.end - self.start + 1


_SPEC = re.compile(r"(\d{0,19})-(\d{0,19})")


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the requested range is outside the {size}-byte content",
        headers={"Content-Range": f"bytes */{size}"},
    )


def etag_for(sha256: str) -> str:
    """Strong validator: the content hash, quoted."""
    return f'"{sha256}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` semantics: weak comparison against a list of tags, or ``*``."""
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


def parse_range(header: str | None, size: int, *, if_range: str | None = None, etag: str | None = None) -> ByteRange:
    """Resolve a ``Range`` header against a body of ``size`` bytes.

    Returns ``ByteRange(200, 0, size - 1)`` for the whole body or ``ByteRange(206, start, end)``.
    Raises ``RangeNotSatisfiable`` carrying ``Content-Range: bytes */size``.
    ``if_range``/``etag``: when ``If-Range`` is sent it must equal the (strong) ETag, otherwise
    the range is ignored; a date in ``If-Range`` never matches because we send no Last-Modified.
    """
    whole = ByteRange(200, 0, size - 1)
    if header is None:
        return whole
    if if_range is not None:
        tag = if_range.strip()
        if etag is None or tag.startswith("W/") or tag != etag:
            return whole
    unit, eq, ranges = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return whole
    specs = [part.strip() for part in ranges.split(",") if part.strip()]
    if len(specs) != 1:
        return whole  # none (invalid) or several (policy above)
    match = _SPEC.fullmatch(specs[0])
    if match is None:
        return whole
    first, last = match.groups()
    if not first and not last:
        return whole
    if not first:  # suffix: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise _unsatisfiable(size)
        return ByteRange(206, max(0, size - count), size - 1)
    start = int(first)
    if last and int(last) < start:
        return whole  # invalid per RFC 9110, so ignored
    end = int(last) if last else size - 1
    if start >= size:
        raise _unsatisfiable(size)
    return ByteRange(206, start, min(end, size - 1))


_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9 !#$&'()+,.=@\[\]^_`{}~-]")


def content_disposition(filename: str | None, disposition: Literal["attachment", "inline"] = "attachment") -> str:
    """``attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded`` (RFC 6266/5987)."""
    name = safe_filename(filename, fallback="download")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    ascii_stem, ascii_ext = (
        _ASCII_UNSAFE.sub("_", unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode("ascii"))
        for part in (stem, ext)
    )
    if not re.search(r"[A-Za-z0-9]", ascii_stem):
        ascii_stem = "download"
    ascii_name = f"{ascii_stem}.{ascii_ext}" if ascii_ext else ascii_stem
    encoded = quote(name, safe="!#$&+-.^_`|~", encoding="utf-8")
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"


def _content_type(media_type: str) -> str:
    # Uploads sniffed as text/plain were checked to be UTF-8; HTML may be in any charset.
    if media_type == "text/plain":
        return "text/plain; charset=utf-8"
    return media_type


async def blob_response(
    request: Request,
    store: BlobStore,
    *,
    sha256: str,
    media_type: str,
    filename: str | None,
    size: int | None = None,
    disposition: Literal["attachment", "inline"] = "attachment",
    cache_control: str = DEFAULT_CACHE_CONTROL,
) -> Response:
    """Answer a GET or HEAD for one blob.

    ``size`` should come from the evidence row; when omitted the store is asked. Raises
    ``RangeNotSatisfiable`` (416) and ``BlobNotFound`` (bytes missing: the route decides between
    410 for purged evidence and a server error).
    """
    if size is None:
        size = await anyio.to_thread.run_sync(store.size, sha256)
        if size is None:
            raise BlobNotFound(sha256)
    etag = etag_for(sha256)
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control,
        "X-Content-Type-Options": "nosniff",
    }
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)

    chosen = parse_range(request.headers.get("range"), size, if_range=request.headers.get("if-range"), etag=etag)
    if media_type == "text/html" or media_type.endswith(("+xml", "/xml")):
        disposition = "attachment"  # never render uploaded markup in our origin
        headers["Content-Security-Policy"] = HTML_CSP
    headers.update(
        {
            "Content-Type": _content_type(media_type),
            "Content-Length": str(max(chosen.length, 0)),
            "Accept-Ranges": "bytes",
            "Content-Disposition": content_disposition(filename, disposition),
        }
    )
    if chosen.status == 206:
        headers["Content-Range"] = f"bytes {chosen.start}-{chosen.end}/{size}"

    if request.method == "HEAD" or chosen.length <= 0:
        return Response(status_code=chosen.status, headers=headers)
    body = await anyio.to_thread.run_sync(store.open_range, sha256, chosen.start, chosen.end)
    return StreamingResponse(body, status_code=chosen.status, headers=headers)
