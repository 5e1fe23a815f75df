"""Streaming ``multipart/form-data`` ingest of one evidence file.

``ingest_upload`` reads ``request.stream()`` through python-multipart's push parser, so the file
is never spooled in memory or in a second temporary file: bytes are hashed and handed to the
``BlobWriter`` as they arrive, in ~1 MiB writes on a worker thread; one write runs while the next
buffer fills. Memory per request stays around two write buffers plus one network chunk (and one S3
part inside the S3 writer).

Checks, in the order they can fire:

1. ``Content-Type`` is not multipart/form-data -> 415; no boundary -> 422.
2. Declared ``Content-Length`` above ``max_bytes`` + form allowance -> 413 before reading anything.
3. While streaming: the file part passes ``max_bytes`` -> 413 at once (the size limit is checked on
   every chunk, before the media type is known); the whole body passes ``max_bytes`` + allowance
   -> 413; a text field passes its cap -> 413.
4. After the first ``SNIFF_BYTES`` of the file (or its end, if shorter) the type is sniffed from
   the bytes -> 415 if not allowed. ``text/plain`` keeps being checked as UTF-8 to the end.
5. Empty file, missing ``file`` part, malformed or truncated body -> 422.

Any failure, including ``ClientDisconnect`` and cancellation, aborts the writer so no temporary file
or pending multipart upload survives; the exception is then re-raised. Only a body that arrived
complete is committed, and ``commit()`` returns after the bytes are durable, so the caller can
write its database row next.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.errors import DomainError, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from app.evidence.sniff import SNIFF_BYTES, TextChecker, sniff_media_type
from app.evidence.storage import BlobStore, BlobWriter, StoredBlob

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks
    from starlette.requests import Request

FILE_FIELD = "file"
FIELD_LIMIT = 64 * 1024
MAX_PARTS = 16
FORM_ALLOWANCE = 256 * 1024
WRITE_CHUNK = 1024 * 1024
FILENAME_MAX = 255

__all__ = ["FILE_FIELD", "IngestedUpload", "ingest_upload", "safe_filename"]


@dataclass(frozen=True, slots=True)
class IngestedUpload:
    blob: StoredBlob
    media_type: str
    filename: str
    fields: dict[str, str] = field(default_factory=dict)


# Control characters, invisible format characters (bidi overrides such as U+202E), unpaired
# surrogates and line/paragraph separators never belong in a display name.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def safe_filename(raw: str | None, *, max_length: int = FILENAME_MAX, fallback: str = "upload") -> str:
    """A display name from a client-supplied filename: last path component only (``/`` and ``\\``),
    no drive letter, no control or bidi characters, no ``..``, no leading/trailing dots or spaces,
    at most ``max_length`` characters (the extension survives truncation), else ``fallback``."""
    if not raw:
        return fallback
    name = unicodedata.normalize("NFC", raw)
    name = re.sub(r"[\t\n\r\v\f]+", " ", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"^[A-Za-z]:", "", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = stem[: max_length - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:max_length].rstrip(" .")
    return name or fallback


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 else f"{n} bytes"


class _Ingest:
    """Parser callbacks (synchronous, cheap) plus the state the async driver acts on."""

    def __init__(self, *, max_bytes: int, field_limit: int, max_parts: int, file_field: str) -> None:
        self.max_bytes = max_bytes
        self.field_limit = field_limit
        self.max_parts = max_parts
        self.file_field = file_field

        self.parts = 0
        self.finished = False
        self.fields: dict[str, str] = {}

        # current part
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name = ""
        self._in_file = False
        self._value = bytearray()

        # the file
        self.seen_file = False
        self.file_done = False
        self.filename: str | None = None
        self.file_size = 0
        self.media_type: str | None = None
        self._sniff = bytearray()
        self._text: TextChecker | None = None
        self.pending = bytearray()  # sniffed bytes waiting for the next write

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise Unprocessable(f"too many form parts (at most {self.max_parts})")
        self._headers = {}
        self._name = ""
        self._in_file = False
        self._value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).decode("latin-1").strip().lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", b"").decode("latin-1"))
        if disposition != b"form-data" or b"name" not in options:
            raise Unprocessable("every form part needs Content-Disposition: form-data; name=...")
        # Browsers send names and filenames as raw UTF-8 inside the quoted string.
        self._name = options[b"name"].decode("utf-8", "replace")
        if self._name != self.file_field:
            return
        if self.seen_file:
            raise Unprocessable(f"only one {self.file_field!r} part is allowed")
        self.seen_file = True
        self._in_file = True
        raw = options.get(b"filename")
        self.filename = raw.decode("utf-8", "replace") if raw is not None else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if end <= start:
            return
        if not self._in_file:
            chunk = data[start:end]
            if len(self._value) + len(chunk) > self.field_limit:
                raise PayloadTooLarge(
                    f"form field {self._name!r} is larger than {_kib(self.field_limit)}",
                    limit=self.field_limit,
                )
            self._value += chunk
            return
        # File bytes are viewed, not sliced: they are copied once, into ``pending``.
        view = memoryview(data)[start:end]
        self.file_size += len(view)
        if self.file_size > self.max_bytes:
            raise PayloadTooLarge(f"file is larger than the {self.max_bytes}-byte upload limit", limit=self.max_bytes)
        if self.media_type is None:
            self._sniff += view
            if len(self._sniff) >= SNIFF_BYTES:
                self._decide(complete=False)
        else:
            self._accept(view)

    def _decide(self, *, complete: bool) -> None:
        head = bytes(self._sniff)
        self._sniff.clear()
        self.media_type = sniff_media_type(head[:SNIFF_BYTES], self.filename, complete=complete)
        if self.media_type == "text/plain":
            self._text = TextChecker()
        self._accept(head)

    def _accept(self, chunk: bytes | memoryview) -> None:
        if self._text is not None:
            self._text.feed(bytes(chunk))
        self.pending += chunk

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            if self.file_size == 0:
                raise Unprocessable("the uploaded file is empty")
            if self.media_type is None:
                self._decide(complete=True)
            if self._text is not None:
                self._text.finish()
            self.file_done = True
            return
        if self._name in self.fields:
            raise Unprocessable(f"form field {self._name!r} appears more than once")
        try:
            self.fields[self._name] = bytes(self._value).decode("utf-8")
        except UnicodeDecodeError:
            raise Unprocessable(f"form field {self._name!r} is not valid UTF-8") from None

    def _end(self) -> None:
        self.finished = True


class _Sink:
    """Opens the store writer on the first write, so a request refused early stores nothing."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.writer: BlobWriter | None = None

    def write(self, data: bytes | bytearray) -> None:
        if self.writer is None:
            self.writer = self.store.begin()
        self.writer.write(data)

    def commit(self) -> StoredBlob:
        if self.writer is None:
            raise RuntimeError("nothing was written")
        return self.writer.commit()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _boundary_of(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        shown = content_type.decode("latin-1") or "none"
        raise UnsupportedMediaType(
            f"send the file as multipart/form-data (got Content-Type {shown})",
            detected=shown,
            accepted=["multipart/form-data"],
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise Unprocessable("multipart/form-data without a boundary parameter")
    return boundary


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def ingest_upload(
    request: Request,
    store: BlobStore,
    *,
    max_bytes: int,
    field_limit: int = FIELD_LIMIT,
    max_parts: int = MAX_PARTS,
    form_allowance: int = FORM_ALLOWANCE,
    file_field: str = FILE_FIELD,
) -> IngestedUpload:
    """Stream the ``file`` part of a multipart request into ``store`` and commit it.

    ``fields`` holds every other part as text (each at most ``field_limit`` bytes). The body as a
    whole may exceed ``max_bytes`` by ``form_allowance`` for boundaries, part headers and fields.
    Raises the DomainErrors listed in the module docstring; re-raises ``ClientDisconnect``.
    """
    boundary = _boundary_of(request)
    body_limit = max_bytes + form_allowance
    declared = _declared_length(request)
    if declared is not None and declared > body_limit:
        raise PayloadTooLarge(
            f"request body of {declared} bytes exceeds the {max_bytes}-byte upload limit",
            headers={"Connection": "close"},
            limit=max_bytes,
        )

    state = _Ingest(max_bytes=max_bytes, field_limit=field_limit, max_parts=max_parts, file_field=file_field)
    try:
        parser = MultipartParser(boundary, state.callbacks())
    except ValueError as exc:  # python-multipart's errors derive from ValueError (e.g. long boundary)
        raise Unprocessable(f"malformed multipart request: {exc}") from None

    sink = _Sink(store)
    # One write (hash + store) runs on a worker thread while the next buffer is received and parsed;
    # never more than one, so memory stays at two buffers whatever the client's speed.
    writing: asyncio.Future[None] | None = None

    async def settle() -> None:
        nonlocal writing
        if writing is not None:
            # Shielded: cancelling the upload must not cancel the write (its thread runs on anyway);
            # the write stays known until it has finished, so the cleanup below can wait for it.
            await asyncio.shield(writing)
            writing = None

    async def flush(*, wait: bool = False) -> None:
        nonlocal writing
        await settle()
        if state.pending:
            data, state.pending = state.pending, bytearray()
            writing = asyncio.ensure_future(anyio.to_thread.run_sync(sink.write, data))
        if wait:
            await settle()

    received = 0
    consumed = False
    try:
        async with aclosing(request.stream()) as stream:
            async for chunk in stream:
                if not chunk:
                    continue
                received += len(chunk)
                if received > body_limit:
                    raise PayloadTooLarge(f"request body exceeds the {max_bytes}-byte upload limit", limit=max_bytes)
                if state.finished:
                    continue  # epilogue after the closing boundary: ignored
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise Unprocessable(f"malformed multipart body: {exc}") from None
                if len(state.pending) >= WRITE_CHUNK:
                    await flush()
        consumed = True

        if not state.seen_file:
            raise Unprocessable(f"the form has no {file_field!r} part", missing=[file_field])
        if not state.finished or not state.file_done:
            raise Unprocessable("the multipart body ended before its closing boundary")
        await flush(wait=True)
        blob = await anyio.to_thread.run_sync(sink.commit)
    except BaseException as exc:
        if isinstance(exc, DomainError) and not consumed:
            # The rest of the body is still on the wire: tell the server not to reuse the connection.
            exc.headers.setdefault("Connection", "close")
        # Shielded so the cleanup still runs when the request task is being cancelled. A write still
        # running is waited for first: the writer is not for two threads at once, and a write that
        # lands after the abort would leave a temporary file or an open multipart upload behind.
        with anyio.CancelScope(shield=True):
            if writing is not None:
                await asyncio.wait({writing})
                if not writing.cancelled():
                    writing.exception()  # seen here; a failed write has aborted the writer already
            if sink.writer is not None:
                await anyio.to_thread.run_sync(sink.abort)
        raise

    return IngestedUpload(
        blob=blob,
        media_type=state.media_type or "application/octet-stream",  # always set once file_done
        filename=safe_filename(state.filename),
        fields=state.fields,
    )
