"""ingest_upload over real HTTP: uvicorn on loopback, httpx and raw sockets as clients."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import cast

import anyio
import httpx
import pytest

from app.evidence.storage import BlobStore, BlobWriter, LocalBlobStore, S3BlobStore, StoredBlob
from app.evidence.upload import ingest_upload

from . import samples, site
from .helpers import is_clean, leftovers

MiB = 1024 * 1024
BOUNDARY = "claimdesk-test-boundary-4f1c2d"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"

Served = Callable[[BlobStore], str]


def part(name: str, value: bytes, filename: str | None = None, content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def form(data: bytes | None, filename: str = "evidence.bin", fields: dict[str, str] | None = None) -> bytes:
    body = b"".join(part(k, v.encode()) for k, v in (fields or {}).items())
    if data is not None:
        # The client's declared type is deliberately wrong: only the bytes count.
        body += part("file", data, filename, "application/x-lies")
    return body + f"--{BOUNDARY}--\r\n".encode()


def post(base: str, body: bytes, *, max_bytes: int | None = None, content_type: str = MULTIPART) -> httpx.Response:
    params = {"max": str(max_bytes)} if max_bytes else None
    return httpx.post(f"{base}/upload", content=body, headers={"Content-Type": content_type}, params=params)


def stored(store: BlobStore) -> list[str]:
    return list(store.iter_hashes())


def assert_nothing_kept(store: BlobStore) -> None:
    assert stored(store) == []
    assert is_clean(store), leftovers(store)


# --------------------------------------------------------------------------------------------------


def test_upload_png_with_fields(store: BlobStore, served: Served) -> None:
    base = served(store)
    data = samples.png(32, 32)
    fields = {"stance": "supports", "dimension": "source", "visibility": "internal", "note": "Zitat: „ok“ ✓"}
    response = post(base, form(data, "Screenshot 2024.png", fields))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "media_type": "image/png",
        "filename": "Screenshot 2024.png",
        "fields": fields,
    }
    assert b"".join(store.read_all(body["sha256"])) == data
    assert is_clean(store)


@pytest.mark.parametrize(
    ("make", "filename", "media_type"),
    [
        (samples.jpeg, "a.jpg", "image/jpeg"),
        (samples.mp4, "clip.mp4", "video/mp4"),
        (samples.pdf, "report.pdf", "application/pdf"),
        (samples.text, "notes.txt", "text/plain"),
        (samples.wacz, "crawl.wacz", "application/wacz"),
    ],
)
def test_media_type_comes_from_bytes(
    local_store: LocalBlobStore, served: Served, make: Callable[[], bytes], filename: str, media_type: str
) -> None:
    base = served(local_store)
    response = post(base, form(make(), filename))
    assert response.status_code == 200, response.text
    assert response.json()["media_type"] == media_type


def test_large_chunked_upload_streams(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    data = samples.png() + os.urandom(6 * MiB)
    body = form(data, "big.png", {"note": "n"})

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for offset in range(0, len(body), 100_000):
            yield body[offset : offset + 100_000]

    response = httpx.post(f"{base}/upload", content=chunks(), headers={"Content-Type": MULTIPART})
    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.json()["fields"] == {"note": "n"}
    assert is_clean(local_store)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\evil.png", "evil.png"),
        ("..\\..\\windows\\system32\\x.png", "x.png"),
        ("/abs/path/\u202egnp.exe", "gnp.exe"),
        ("..", "upload"),
    ],
)
def test_filename_path_tricks(local_store: LocalBlobStore, served: Served, raw: str, expected: str) -> None:
    base = served(local_store)
    response = post(base, form(samples.png(), raw))
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == expected


def test_missing_filename_falls_back(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    body = part("file", samples.pdf()) + f"--{BOUNDARY}--\r\n".encode()
    response = post(base, body)
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "upload"


@pytest.mark.parametrize(
    ("data", "filename", "detected"),
    [
        (samples.elf(), "tool.png", "ELF"),
        (samples.plain_zip(), "bundle.zip", "application/zip"),
        (samples.svg(), "logo.svg", "svg"),
    ],
)
def test_415_for_disallowed_bytes(store: BlobStore, served: Served, data: bytes, filename: str, detected: str) -> None:
    base = served(store)
    response = post(base, form(data, filename))
    assert response.status_code == 415
    assert detected.lower() in response.json()["detected"].lower()
    assert_nothing_kept(store)


def test_415_when_text_turns_binary_late(local_store: LocalBlobStore, served: Served) -> None:
    # Sniffed as text/plain from the head, written to disk past 1 MiB, then a NUL arrives: aborted.
    base = served(local_store)
    data = b"line of text\n" * (200_000) + b"\x00binary"
    response = post(base, form(data, "log.txt"))
    assert response.status_code == 415
    assert "NUL" in response.json()["detail"]
    assert_nothing_kept(local_store)


def test_415_not_multipart(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    response = post(base, b'{"file": "x"}', content_type="application/json")
    assert response.status_code == 415
    assert response.json()["detected"] == "application/json"


def test_422_empty_file(store: BlobStore, served: Served) -> None:
    base = served(store)
    response = post(base, form(b"", "empty.png"))
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]
    assert_nothing_kept(store)


def test_422_missing_file_part(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    response = post(base, form(None, fields={"stance": "refutes"}))
    assert response.status_code == 422
    assert response.json()["missing"] == ["file"]


def test_422_missing_boundary_and_truncated_body(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    assert post(base, b"x", content_type="multipart/form-data").status_code == 422
    truncated = form(samples.png(), "a.png")[: -len(f"--{BOUNDARY}--\r\n") - 2]
    response = post(base, truncated)
    assert response.status_code == 422
    assert "closing boundary" in response.json()["detail"]
    assert_nothing_kept(local_store)


def test_422_two_file_parts(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    body = part("file", samples.png(), "a.png") + part("file", samples.png(), "b.png")
    response = post(base, body + f"--{BOUNDARY}--\r\n".encode())
    assert response.status_code == 422
    assert_nothing_kept(local_store)


def test_413_oversized_text_field(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    response = post(base, form(samples.png(), "a.png", {"note": "x" * (64 * 1024 + 1)}))
    assert response.status_code == 413
    assert "note" in response.json()["detail"]
    assert_nothing_kept(local_store)


def test_413_file_over_limit(store: BlobStore, served: Served) -> None:
    base = served(store)
    data = samples.pdf() + b"0" * 5000
    assert post(base, form(data, "a.pdf"), max_bytes=len(data)).status_code == 200
    too_big = post(base, form(data + b"!", "b.pdf"), max_bytes=len(data))
    assert too_big.status_code == 413
    assert too_big.headers["connection"] == "close"
    assert stored(store) == [hashlib.sha256(data).hexdigest()]
    assert is_clean(store)


def test_413_size_checked_before_type(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    response = post(base, form(samples.elf(), "x.bin"), max_bytes=10)
    assert response.status_code == 413


# --------------------------------------------------------------------------------------------------
# Raw sockets: early answers and clients that vanish.


def request_head(port: int, path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {MULTIPART}\r\n{extra}\r\n").encode()


def read_status(sock: socket.socket) -> int:
    sock.settimeout(10)
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return int(received.split(b" ", 2)[1])


def test_413_from_content_length_without_reading(local_store: LocalBlobStore, served: Served) -> None:
    served(local_store)
    port = int(httpx.URL(served(local_store)).port or 0)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # Announce 50 MiB against a 1 MiB limit and send none of it: the answer comes anyway.
        sock.sendall(request_head(port, f"/upload?max={MiB}", f"Content-Length: {50 * MiB}\r\n"))
        assert read_status(sock) == 413
    assert site.STATE.events == [("error", 413)]
    assert_nothing_kept(local_store)


def chunk_encode(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_413_as_soon_as_the_file_passes_the_limit(store: BlobStore, served: Served) -> None:
    base = served(store)
    port = int(httpx.URL(base).port or 0)
    limit = 9 * MiB  # past one S3 part, so the S3 writer has a multipart upload open by then
    opening = (
        part("note", b"hi")
        + (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n%PDF-1.7\n'
        ).encode()
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_head(port, f"/upload?max={limit}", "Transfer-Encoding: chunked\r\n"))
        sock.sendall(chunk_encode(opening))
        filler = b"0" * (256 * 1024)
        sent = 0
        while sent <= limit + len(filler):  # a little past the limit, then stop sending
            sock.sendall(chunk_encode(filler))
            sent += len(filler)
        # The rest of the body never comes; the 413 must arrive regardless.
        assert read_status(sock) == 413
    assert site.STATE.done.wait(10)
    assert site.STATE.events == [("error", 413)]
    assert_nothing_kept(store)


def test_client_disconnect_half_way(store: BlobStore, served: Served) -> None:
    base = served(store)
    port = int(httpx.URL(base).port or 0)
    data = samples.mp4(os.urandom(20 * MiB))
    body = form(data, "clip.mp4")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_head(port, f"/upload?max={64 * MiB}", f"Content-Length: {len(body)}\r\n"))
        sock.sendall(body[: 12 * MiB])  # 12 of 20 MiB: temp file / open multipart upload exist now
        deadline = time.monotonic() + 10
        while not (leftovers(store).get("tmp") or leftovers(store).get("uploads")):
            assert not site.STATE.done.is_set(), site.STATE.events
            assert time.monotonic() < deadline, "upload never reached the store"
            time.sleep(0.02)
    # Socket closed mid-body.
    assert site.STATE.done.wait(10)
    assert site.STATE.events == [("disconnect",)]
    assert_nothing_kept(store)
    if isinstance(store, S3BlobStore):
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


class _FailingWriter:
    """A local writer whose disk "fills up" after ``fail_after`` bytes."""

    def __init__(self, inner: BlobWriter, fail_after: int) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.size = 0

    def write(self, chunk: bytes | bytearray) -> None:
        self.size += len(chunk)
        if self.size > self.fail_after:
            self.inner.abort()  # what BlobWriter.write does when its own _write raises
            raise OSError(errno.ENOSPC, "No space left on device")
        self.inner.write(chunk)

    def commit(self) -> StoredBlob:
        return self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


class _FillingStore(LocalBlobStore):
    def begin(self) -> BlobWriter:
        return cast(BlobWriter, _FailingWriter(super().begin(), fail_after=3 * MiB))


def test_a_store_write_failing_mid_upload_keeps_nothing(tmp_path: Path, served: Served) -> None:
    """Writes run on a thread while the next buffer is received: a write that fails is reported on the
    next flush, the request fails, and no staged file is left behind."""
    store = _FillingStore(tmp_path / "evidence")
    base = served(store)
    response = post(base, form(samples.mp4(os.urandom(12 * MiB)), "clip.mp4"), max_bytes=64 * MiB)
    assert response.status_code == 500
    assert site.STATE.done.wait(10)
    assert not any(event[0] == "stored" for event in site.STATE.events)
    assert_nothing_kept(store)


class _SlowWrites(LocalBlobStore):
    """Local storage whose writes take a while, recording when writes end and the abort happens."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.events: list[str] = []
        self.writing = threading.Event()

    def begin(self) -> BlobWriter:
        writer = super().begin()
        write, abort = writer._write, writer._abort
        events, writing = self.events, self.writing

        def slow_write(chunk: bytes | bytearray) -> None:
            writing.set()
            time.sleep(0.3)
            write(chunk)
            events.append("written")

        def recorded_abort() -> None:
            events.append("abort")
            abort()

        writer._write = slow_write  # type: ignore[method-assign]
        writer._abort = recorded_abort  # type: ignore[method-assign]
        return writer


class _Body:
    """The two things ingest_upload reads from a request, for a body that never finishes."""

    def __init__(self, head: bytes, data: bytes) -> None:
        self.headers = {"content-type": MULTIPART}
        self._head, self._data = head, data

    async def stream(self) -> AsyncIterator[bytes]:
        yield self._head
        for offset in range(0, len(self._data), 256 * 1024):
            yield self._data[offset : offset + 256 * 1024]  # at once: the upload soon waits on a write
        await asyncio.sleep(3600)  # the rest never comes: only cancellation ends this upload


def test_an_upload_cancelled_during_a_write_waits_for_it_then_aborts(tmp_path: Path) -> None:
    """Cancellation (a deadline, a shutdown) lands while a write runs on its thread: the cleanup
    waits for that write, then aborts, so nothing is left behind and nothing runs after it."""
    store = _SlowWrites(tmp_path / "evidence")
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n\r\n'.encode()

    async def go() -> bool:
        with anyio.move_on_after(5) as scope:

            async def cancel_once_writing() -> None:
                while not store.writing.is_set():
                    await asyncio.sleep(0.01)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_writing)
                await ingest_upload(_Body(head, samples.mp4(os.urandom(4 * MiB))), store, max_bytes=64 * MiB)  # type: ignore[arg-type]
        return scope.cancelled_caught

    assert asyncio.run(go())
    # Right after the cancelled call returns: the write it was waiting for had finished, then abort.
    assert store.events and store.events[-1] == "abort" and store.events.count("abort") == 1
    assert "written" in store.events
    assert_nothing_kept(store)
