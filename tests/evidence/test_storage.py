"""Both BlobStore adapters against real backends: a temp directory and a moto S3 server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from app.config import Settings
from app.evidence.storage import (
    WRITEBACK_EVERY,
    BlobNotFound,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    StoredBlob,
    make_blob_store,
)

from . import samples
from .helpers import is_clean, leftovers

MiB = 1024 * 1024


def put(store: BlobStore, data: bytes, chunk: int = 7919) -> StoredBlob:
    writer = store.begin()
    for offset in range(0, len(data), chunk):
        writer.write(data[offset : offset + chunk])
    return writer.commit()


def read(store: BlobStore, sha256: str, start: int, end: int) -> bytes:
    return b"".join(store.open_range(sha256, start, end))


SAMPLES = {
    "png": samples.png(64, 48),
    "jpeg": samples.jpeg(),
    "mp4": samples.mp4(os.urandom(200_000)),
    "pdf": samples.pdf(),
    "text": samples.text(500),
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_store_and_read_back(store: BlobStore, kind: str) -> None:
    data = SAMPLES[kind]
    blob = put(store, data)
    assert blob == StoredBlob(hashlib.sha256(data).hexdigest(), len(data))
    assert store.exists(blob.sha256)
    assert store.size(blob.sha256) == len(data)
    assert b"".join(store.read_all(blob.sha256)) == data
    assert list(store.iter_hashes()) == [blob.sha256]
    assert is_clean(store)


def test_ranges(store: BlobStore) -> None:
    data = SAMPLES["mp4"]
    sha = put(store, data).sha256
    last = len(data) - 1
    for start, end in [(0, 0), (0, 99), (4, 11), (1000, 150_000), (last, last), (last - 9, last), (0, last)]:
        assert read(store, sha, start, end) == data[start : end + 1], (start, end)
    chunks = list(store.open_range(sha, 0, last))
    assert max(len(c) for c in chunks) <= 256 * 1024  # bounded chunks, not one big read
    for start, end in [(-1, 3), (5, 4), (0, len(data)), (len(data), len(data) + 3)]:
        with pytest.raises(ValueError, match="range"):
            read(store, sha, start, end)


def test_missing_blob(store: BlobStore) -> None:
    missing = "0" * 64
    assert store.size(missing) is None
    assert not store.exists(missing)
    assert store.delete(missing) is False
    with pytest.raises(BlobNotFound):
        store.open_range(missing, 0, 0)  # raised on open, not on first iteration
    with pytest.raises(BlobNotFound):
        store.read_all(missing)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "abc", "0" * 63 + "/"])
def test_rejects_non_hash_addresses(store: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        store.size(bad)


def test_same_bytes_stored_once(store: BlobStore) -> None:
    data = samples.png(8, 8)
    first = put(store, data)
    second = put(store, data, chunk=3)
    assert first == second
    assert list(store.iter_hashes()) == [first.sha256]
    if isinstance(store, LocalBlobStore):
        files = [p for p in store.root.rglob("*") if p.is_file()]
        assert files == [store.path_for(first.sha256)]
    else:
        assert isinstance(store, S3BlobStore)
        keys = [o["Key"] for o in store.client.list_objects_v2(Bucket=store.bucket)["Contents"]]
        assert keys == [store.key_for(first.sha256)]
    assert is_clean(store)


def test_abort_leaves_nothing(store: BlobStore) -> None:
    writer = store.begin()
    writer.write(b"%PDF-1.7\n" + b"x" * (9 * MiB))  # past one S3 part, so a multipart upload is open
    if isinstance(store, S3BlobStore):
        assert leftovers(store)["uploads"]
    else:
        assert leftovers(store)["tmp"]
    writer.abort()
    writer.abort()  # idempotent
    assert is_clean(store)
    assert list(store.iter_hashes()) == []
    with pytest.raises(RuntimeError):
        writer.write(b"more")


def test_context_manager_aborts_without_commit(store: BlobStore) -> None:
    def fail_half_way() -> None:
        with store.begin() as writer:
            writer.write(b"partial")
            raise KeyError("boom")

    with pytest.raises(KeyError):
        fail_half_way()
    assert is_clean(store)
    assert list(store.iter_hashes()) == []


def test_delete_destroys_bytes(store: BlobStore) -> None:
    keep = put(store, samples.jpeg())
    gone = put(store, samples.pdf())
    assert store.delete(gone.sha256) is True
    assert store.delete(gone.sha256) is False
    assert store.size(gone.sha256) is None
    with pytest.raises(BlobNotFound):
        store.open_range(gone.sha256, 0, 0)
    assert list(store.iter_hashes()) == [keep.sha256]
    if isinstance(store, LocalBlobStore):
        assert not store.path_for(gone.sha256).exists()
        assert not store.path_for(gone.sha256).parent.exists()  # emptied fan-out dirs pruned


def test_sweep_incomplete(store: BlobStore) -> None:
    writer = store.begin()
    writer.write(b"x" * (8 * MiB + 1))
    if isinstance(store, LocalBlobStore):  # moto reports every multipart upload as started in 2010
        assert store.sweep_incomplete(older_than_seconds=3600) == 0
    assert store.sweep_incomplete(older_than_seconds=-60) >= 1
    assert is_clean(store)


def test_local_commit_is_atomic_rename(local_store: LocalBlobStore) -> None:
    data = samples.png()
    sha = hashlib.sha256(data).hexdigest()
    writer = local_store.begin()
    writer.write(data)
    # Before commit the bytes only exist under tmp/, never at the content address.
    assert not local_store.path_for(sha).exists()
    assert len(leftovers(local_store)["tmp"]) == 1
    writer.commit()
    assert local_store.path_for(sha).read_bytes() == data
    assert local_store.path_for(sha).relative_to(local_store.root).parts == (sha[:2], sha[2:4], sha)
    assert is_clean(local_store)


def test_local_writes_start_their_disk_write_back_as_they_go(local_store: LocalBlobStore) -> None:
    """Every WRITEBACK_EVERY bytes the writer asks the kernel to start writing them out, so the fsync
    at commit has little left to wait for; the bytes stored are unchanged by it."""
    block = os.urandom(1024 * 1024)
    total = 2 * WRITEBACK_EVERY + 3 * len(block)
    writer = local_store.begin()
    digest = hashlib.sha256()
    for _ in range(total // len(block)):
        writer.write(block)
        digest.update(block)
    started = writer._kicked  # bytes whose write-back was started
    blob = writer.commit()
    if hasattr(os, "posix_fadvise"):
        assert started == 2 * WRITEBACK_EVERY
    assert blob == StoredBlob(digest.hexdigest(), total)
    with local_store.path_for(blob.sha256).open("rb") as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == blob.sha256
    assert is_clean(local_store)


def test_s3_multipart_upload_of_several_parts(s3_store: S3BlobStore) -> None:
    data = os.urandom(20 * MiB + 12345)
    blob = put(s3_store, data, chunk=MiB)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert s3_store.size(blob.sha256) == len(data)
    digest = hashlib.sha256()
    for chunk in s3_store.read_all(blob.sha256):
        digest.update(chunk)
    assert digest.hexdigest() == blob.sha256
    boundary = 8 * MiB
    assert read(s3_store, blob.sha256, boundary - 10, boundary + 10) == data[boundary - 10 : boundary + 11]
    assert is_clean(s3_store)
    # The same 20 MiB again: deduplicated, temp object and upload cleaned up.
    assert put(s3_store, data, chunk=4 * MiB) == blob
    assert list(s3_store.iter_hashes()) == [blob.sha256]
    assert is_clean(s3_store)


def test_make_blob_store(tmp_path: Path, moto_endpoint: str) -> None:
    local = make_blob_store(Settings(_env_file=None, storage=str(tmp_path / "ev")))
    assert isinstance(local, LocalBlobStore)
    assert local.root == (tmp_path / "ev").resolve()
    s3 = make_blob_store(Settings(_env_file=None, storage="s3://my-bucket/some/prefix/", s3_endpoint_url=moto_endpoint))
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("my-bucket", "some/prefix", moto_endpoint)
    assert s3.key_for("a" * 64) == "some/prefix/" + "a" * 64
    bare = make_blob_store(Settings(_env_file=None, storage="s3://only-bucket", s3_endpoint_url=""))
    assert isinstance(bare, S3BlobStore)
    assert (bare.prefix, bare.endpoint_url) == ("", None)
    assert bare.key_for("b" * 64) == "b" * 64
