"""blob_response over real HTTP (uvicorn + httpx): headers, ranges, conditional requests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import httpx
import pytest

from app.evidence.download import HTML_CSP
from app.evidence.storage import BlobStore, LocalBlobStore, StoredBlob

from . import samples

Served = Callable[[BlobStore], str]


def put(store: BlobStore, data: bytes) -> StoredBlob:
    with store.begin() as writer:
        writer.write(data)
        return writer.commit()


def get(
    base: str, blob: StoredBlob, media_type: str, name: str = "file", method: str = "GET", **headers: str
) -> httpx.Response:
    params = {"type": media_type, "name": name, "size": str(blob.size)}
    return httpx.request(
        method,
        f"{base}/content/{blob.sha256}",
        params=params,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


def test_whole_body_and_headers(store: BlobStore, served: Served) -> None:
    base = served(store)
    data = samples.png(40, 40)
    blob = put(store, data)
    response = get(base, blob, "image/png", "Bildschirmfoto äö.png")
    assert response.status_code == 200
    assert response.content == data
    h = response.headers
    assert h["content-type"] == "image/png"
    assert h["content-length"] == str(len(data))
    assert h["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert h["accept-ranges"] == "bytes"
    assert h["x-content-type-options"] == "nosniff"
    assert h["content-disposition"] == (
        "attachment; filename=\"Bildschirmfoto ao.png\"; filename*=UTF-8''Bildschirmfoto%20%C3%A4%C3%B6.png"
    )
    assert "content-range" not in h
    assert "content-security-policy" not in h


def test_ranges(store: BlobStore, served: Served) -> None:
    base = served(store)
    data = samples.mp4(os.urandom(700_000))
    blob = put(store, data)
    size = len(data)
    cases = {
        "bytes=0-0": (0, 0),
        "bytes=100-199": (100, 199),
        "bytes=500000-": (500_000, size - 1),
        "bytes=-10": (size - 10, size - 1),
        f"bytes=10-{size + 50}": (10, size - 1),
    }
    for header, (start, end) in cases.items():
        response = get(base, blob, "video/mp4", range=header)
        assert response.status_code == 206, header
        assert response.content == data[start : end + 1], header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert response.headers["content-length"] == str(end - start + 1)

    whole = get(base, blob, "video/mp4", range="bytes=0-1,10-20")  # several ranges: whole body
    assert whole.status_code == 200
    assert whole.content == data

    missed = get(base, blob, "video/mp4", range=f"bytes={size}-")
    assert missed.status_code == 416
    assert missed.headers["content-range"] == f"bytes */{size}"


def test_conditional_requests(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    blob = put(local_store, samples.pdf())
    etag = f'"{blob.sha256}"'
    cached = get(base, blob, "application/pdf", if_none_match=etag)
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert get(base, blob, "application/pdf", if_none_match='"stale"').status_code == 200
    assert get(base, blob, "application/pdf", range="bytes=0-3", if_range=etag).status_code == 206
    stale = get(base, blob, "application/pdf", range="bytes=0-3", if_range='"stale"')
    assert stale.status_code == 200
    assert stale.content == samples.pdf()


def test_html_is_sandboxed_and_text_is_utf8(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    page = get(base, put(local_store, samples.html()), "text/html", "page.html")
    assert page.headers["content-type"] == "text/html"
    assert page.headers["content-security-policy"] == HTML_CSP
    assert page.headers["content-disposition"].startswith("attachment;")
    note = get(base, put(local_store, samples.text()), "text/plain", "note.txt")
    assert note.headers["content-type"] == "text/plain; charset=utf-8"
    assert note.content == samples.text()


def test_head_and_purged(local_store: LocalBlobStore, served: Served) -> None:
    base = served(local_store)
    data = samples.jpeg()
    blob = put(local_store, data)
    head = get(base, blob, "image/jpeg", method="HEAD")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.content == b""
    local_store.delete(blob.sha256)
    assert get(base, blob, "image/jpeg").status_code == 410


@pytest.mark.parametrize("size_known", [True, False])
def test_size_from_store_when_not_given(local_store: LocalBlobStore, served: Served, size_known: bool) -> None:
    base = served(local_store)
    data = samples.gif()
    blob = put(local_store, data)
    params = {"type": "image/gif"} | ({"size": str(blob.size)} if size_known else {})
    response = httpx.get(f"{base}/content/{blob.sha256}", params=params)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-disposition"].startswith('attachment; filename="download"')
