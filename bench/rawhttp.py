"""Just enough HTTP/1.1 over asyncio streams for load loops and the webhook receiver.

A general-purpose client such as httpx spends more CPU per request than the endpoints we time, and
on a two-core machine that CPU is taken from the server under test. These helpers do the minimum:
one request at a time per keep-alive connection, bodies framed by Content-Length (chunked bodies are
understood when read, never sent).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

HEADER_LIMIT = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something these helpers do not understand."""


@dataclass(slots=True)
class Message:
    """A parsed request or response: ``start`` is the first line, header names are lower-case."""

    start: str
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.start.split(" ", 2)[1])

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0]

    @property
    def target(self) -> str:
        return self.start.split(" ", 2)[1]


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers (if any) end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def read_message(reader: asyncio.StreamReader, *, head_only: bool = False) -> Message | None:
    """One message from ``reader``; None when the peer closed the connection between messages.

    ``head_only`` skips the body (responses to HEAD, and 204/304, carry none)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("message head too large") from exc
    lines = head[:-4].decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if not head_only:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length:
                body = await reader.readexactly(length)
    return Message(lines[0], headers, body)


def render(start: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [start, *(f"{k}: {v}" for k, v in headers.items()), f"content-length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


class Connection:
    """One keep-alive client connection to ``host:port``; ``request`` sends one and awaits its answer."""

    def __init__(self, host: str, port: int, *, default_headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.default_headers = {"host": f"{host}:{port}", **(default_headers or {})}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _ensure_open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=HEADER_LIMIT)
        return self._reader, self._writer

    async def request(
        self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Message:
        reader, writer = await self._ensure_open()
        writer.write(render(f"{method} {path} HTTP/1.1", {**self.default_headers, **(headers or {})}, body))
        await writer.drain()
        response = await read_message(reader, head_only=method == "HEAD")
        if response is None:
            await self.close()
            raise ProtocolError("the server closed the connection without answering")
        if response.status in (204, 304) and response.body:
            raise ProtocolError("a body on a 204/304 response")
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
