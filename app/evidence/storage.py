"""Content-addressed storage for evidence bytes.

Every blob is named by the SHA-256 of its content, so identical uploads share one stored copy and
the name doubles as an integrity check (``claimdesk verify`` re-hashes and compares).

Writing is two-phase. ``BlobStore.begin()`` hands out a ``BlobWriter`` that accepts chunks and
hashes them on the way through; the bytes land somewhere temporary. Only ``commit()`` moves them to
their content address, after they are durable, so a reader never sees a half-written blob under a
real hash. ``abort()`` throws the temporary copy away. Writers are also context managers that abort
when the block exits without a commit.

All methods block (disk or network I/O). Async callers should push them to a worker thread.

Two adapters:

* ``LocalBlobStore(root)`` keeps ``root/ab/cd/<sha256>`` files and stages uploads in ``root/tmp/``
  (same filesystem, so the final ``os.replace`` is atomic).
* ``S3BlobStore(bucket, prefix, endpoint_url)`` keeps ``<prefix>/<sha256>`` objects. Uploads larger
  than one part stream as a multipart upload to ``<prefix>/tmp/<uuid>`` and are copied server-side
  to the content address on commit; smaller ones are sent in one PUT straight to the address.

``make_blob_store(settings)`` picks one from ``Settings.storage``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
# Local uploads start the disk write-back of every 8 MiB as it is written (see _LocalWriter).
WRITEBACK_EVERY = 8 * 1024 * 1024
_FADVISE: int | None = getattr(os, "POSIX_FADV_DONTNEED", None) if hasattr(os, "posix_fadvise") else None
S3_PART_SIZE = 8 * 1024 * 1024
S3_MAX_PARTS = 10_000

_HASH_RE = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(LookupError):
    """No bytes are stored under this hash (never stored, or purged)."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no blob stored under {sha256}")
        self.sha256 = sha256


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int


def check_hash(sha256: str) -> str:
    """Reject anything that is not a lowercase hex SHA-256; it becomes part of a path or key."""
    if not isinstance(sha256, str) or not _HASH_RE.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def _check_range(start: int, end_inclusive: int, size: int) -> None:
    if start < 0 or end_inclusive < start or end_inclusive >= size:
        raise ValueError(f"byte range {start}-{end_inclusive} is outside a blob of {size} bytes")


class _ChunkStream(Iterator[bytes]):
    """Reads ``length`` bytes in bounded chunks from an already-open source, then closes it.

    A class rather than a generator so that the source is released even when the consumer drops the
    iterator before taking the first chunk (a generator's ``finally`` would never run then).
    """

    def __init__(self, read: Callable[[int], bytes], close: Callable[[], None], length: int) -> None:
        self._read = read
        self._close = close
        self._remaining = length
        self._closed = False

    def __iter__(self) -> _ChunkStream:
        return self

    def __next__(self) -> bytes:
        if self._remaining <= 0:
            self.close()
            raise StopIteration
        try:
            data = self._read(min(READ_CHUNK, self._remaining))
        except BaseException:
            self.close()
            raise
        if not data:
            self.close()
            raise OSError(f"blob ended {self._remaining} bytes early")
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class BlobWriter(ABC):
    """Receives one blob's bytes. Subclasses store; this base class hashes and counts."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, chunk: bytes | bytearray) -> None:
        if self._done:
            raise RuntimeError("writer already committed or aborted")
        if not chunk:
            return
        self._hash.update(chunk)
        self._size += len(chunk)
        try:
            self._write(chunk)
        except BaseException:
            self.abort()
            raise

    def commit(self) -> StoredBlob:
        """Make the bytes durable at their content address and return that address."""
        if self._done:
            raise RuntimeError("writer already committed or aborted")
        blob = StoredBlob(self._hash.hexdigest(), self._size)
        try:
            self._commit(blob)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return blob

    def abort(self) -> None:
        """Discard everything written. Safe to call more than once, and after a commit (no-op)."""
        if self._done:
            return
        self._done = True
        self._abort()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    @abstractmethod
    def _write(self, chunk: bytes | bytearray) -> None: ...

    @abstractmethod
    def _commit(self, blob: StoredBlob) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...


class BlobStore(ABC):
    """Where evidence bytes live. Addresses are lowercase hex SHA-256 digests."""

    @abstractmethod
    def begin(self) -> BlobWriter:
        """Start storing a new blob."""

    @abstractmethod
    def open_range(self, sha256: str, start: int, end_inclusive: int) -> Iterator[bytes]:
        """Bytes ``start..end_inclusive`` in bounded chunks.

        The blob is opened before this returns, so ``BlobNotFound`` surfaces here rather than half-way
        through an HTTP response. ``ValueError`` if the range does not fit inside the blob.
        """

    @abstractmethod
    def size(self, sha256: str) -> int | None:
        """Stored size in bytes, or None when absent."""

    @abstractmethod
    def delete(self, sha256: str) -> bool:
        """Destroy the bytes (purge). True if something was removed."""

    @abstractmethod
    def iter_hashes(self) -> Iterator[str]:
        """Every stored address, for integrity checks. Staged uploads are not listed."""

    @abstractmethod
    def sweep_incomplete(self, older_than_seconds: float = 86400.0) -> int:
        """Remove staging leftovers (crashed processes) older than the given age; returns a count."""

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def read_all(self, sha256: str) -> Iterator[bytes]:
        """The whole blob in bounded chunks (``BlobNotFound`` if absent)."""
        size = self.size(sha256)
        if size is None:
            raise BlobNotFound(sha256)
        if size == 0:
            return iter(())
        return self.open_range(sha256, 0, size - 1)


# --------------------------------------------------------------------------------------------------
# Local filesystem


def _fsync_dir(path: Path) -> None:
    # Persist a rename/create inside ``path``. Not every platform lets you open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _LocalWriter(BlobWriter):
    def __init__(self, store: LocalBlobStore) -> None:
        super().__init__()
        self._store = store
        fd, name = tempfile.mkstemp(prefix="up-", suffix=".part", dir=store.tmp_dir)
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._written = 0
        self._kicked = 0  # bytes whose write-back to disk has been started

    def _write(self, chunk: bytes | bytearray) -> None:
        self._file.write(chunk)
        self._written += len(chunk)
        if self._written - self._kicked >= WRITEBACK_EVERY:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Start writing the bytes so far to disk without waiting for it, so that the fsync at
        commit waits for the last few MiB rather than the whole file (a 1 GiB upload otherwise
        spends seconds in that fsync after its last byte arrived). Linux starts the write-back on
        POSIX_FADV_DONTNEED; pages still being written stay cached."""
        if _FADVISE is None:
            return
        self._file.flush()
        with contextlib.suppress(OSError):
            os.posix_fadvise(self._file.fileno(), self._kicked, self._written - self._kicked, _FADVISE)
        self._kicked = self._written

    def _commit(self, blob: StoredBlob) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self._store.path_for(blob.sha256)
        if target.exists():
            # Same bytes already stored: keep the existing copy.
            self._tmp.unlink(missing_ok=True)
            return
        created = not target.parent.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, target)
        _fsync_dir(target.parent)
        if created:
            _fsync_dir(target.parent.parent)
            _fsync_dir(self._store.root)

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_for(self, sha256: str) -> Path:
        check_hash(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def begin(self) -> BlobWriter:
        return _LocalWriter(self)

    def open_range(self, sha256: str, start: int, end_inclusive: int) -> Iterator[bytes]:
        path = self.path_for(sha256)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None
        try:
            _check_range(start, end_inclusive, os.fstat(fh.fileno()).st_size)
            fh.seek(start)
        except BaseException:
            fh.close()
            raise
        return _ChunkStream(fh.read, fh.close, end_inclusive - start + 1)

    def size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> bool:
        # Unlinking releases the blocks; overwriting first buys nothing on journaling or
        # copy-on-write filesystems and SSDs, so it is not attempted.
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()  # only succeeds when empty
            except OSError:
                break
        return True

    def iter_hashes(self) -> Iterator[str]:
        for first in sorted(self.root.iterdir()):
            if len(first.name) != 2 or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for entry in sorted(second.iterdir()):
                    name = entry.name
                    if _HASH_RE.fullmatch(name) and name.startswith(first.name + second.name):
                        yield name

    def sweep_incomplete(self, older_than_seconds: float = 86400.0) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in self.tmp_dir.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


# --------------------------------------------------------------------------------------------------
# S3 and S3-compatible services


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_missing(exc: Exception) -> bool:
    return _error_code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}


class _S3Writer(BlobWriter):
    """Buffers up to one part in memory; a multipart upload starts only once a full part exists."""

    def __init__(self, store: S3BlobStore) -> None:
        super().__init__()
        self._store = store
        self._client = store.client
        self._buffer = bytearray()
        self._tmp_key = f"{store.tmp_prefix}{uuid.uuid4().hex}"
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, chunk: bytes | bytearray) -> None:
        self._buffer += chunk
        part_size = self._store.part_size
        while len(self._buffer) >= part_size:
            self._send_part(bytes(self._buffer[:part_size]))
            del self._buffer[:part_size]

    def _send_part(self, data: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._store.bucket, Key=self._tmp_key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        if number > S3_MAX_PARTS:
            raise OSError("upload exceeds the S3 multipart part limit")
        sent = self._client.upload_part(
            Bucket=self._store.bucket,
            Key=self._tmp_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def _commit(self, blob: StoredBlob) -> None:
        store = self._store
        key = store.key_for(blob.sha256)
        if self._upload_id is None:
            # Fits in one part: a single PUT is atomic, so it can go straight to the address.
            if not store.exists(blob.sha256):
                self._client.put_object(Bucket=store.bucket, Key=key, Body=bytes(self._buffer))
            self._buffer.clear()
            return
        if self._buffer:
            self._send_part(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(
            Bucket=store.bucket,
            Key=self._tmp_key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None  # completed: nothing left to abort, only the temp object to delete
        try:
            if not store.exists(blob.sha256):
                # The managed copy switches to multipart copy above 5 GiB, which a plain
                # copy_object cannot do.
                self._client.copy({"Bucket": store.bucket, "Key": self._tmp_key}, store.bucket, key)
        finally:
            self._client.delete_object(Bucket=store.bucket, Key=self._tmp_key)

    def _abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._client.abort_multipart_upload(Bucket=self._store.bucket, Key=self._tmp_key, UploadId=upload_id)
            except Exception:  # a lifecycle rule / sweep_incomplete will catch it later
                log.warning("could not abort multipart upload %s", self._tmp_key, exc_info=True)
        elif self._parts:  # completed but commit failed before the temp object was removed
            with contextlib.suppress(Exception):
                self._client.delete_object(Bucket=self._store.bucket, Key=self._tmp_key)


class S3BlobStore(BlobStore):
    """Objects at ``<prefix>/<sha256>`` in one bucket.

    Credentials come from the usual boto3 chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
    ``AWS_DEFAULT_REGION``, profiles, instance roles). ``endpoint_url`` targets S3-compatible
    services (MinIO, Ceph, moto); path-style addressing is used whenever one is given.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        *,
        client: Any = None,
        part_size: int = S3_PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name is required")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.endpoint_url = endpoint_url or None
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "max_attempts": 5},
                s3={"addressing_style": "path"} if self.endpoint_url else {},
            )
            client = boto3.client("s3", endpoint_url=self.endpoint_url, config=config)
        self.client = client

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @property
    def _base(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def tmp_prefix(self) -> str:
        return f"{self._base}tmp/"

    def key_for(self, sha256: str) -> str:
        return self._base + check_hash(sha256)

    def begin(self) -> BlobWriter:
        return _S3Writer(self)

    def open_range(self, sha256: str, start: int, end_inclusive: int) -> Iterator[bytes]:
        # One GET; S3 reports the total size in Content-Range, which is enough to validate the range.
        if start < 0 or end_inclusive < start:
            raise ValueError(f"invalid byte range {start}-{end_inclusive}")
        try:
            got = self.client.get_object(
                Bucket=self.bucket, Key=self.key_for(sha256), Range=f"bytes={start}-{end_inclusive}"
            )
        except Exception as exc:
            if _is_missing(exc):
                raise BlobNotFound(sha256) from None
            if _error_code(exc) in {"InvalidRange", "416"}:
                raise ValueError(f"byte range {start}-{end_inclusive} is outside blob {sha256}") from None
            raise
        total = str(got.get("ContentRange", "")).rpartition("/")[2]
        if not total.isdigit() or end_inclusive >= int(total):
            got["Body"].close()
            raise ValueError(f"byte range {start}-{end_inclusive} is outside blob {sha256}")
        body = got["Body"]
        return _ChunkStream(body.read, body.close, end_inclusive - start + 1)

    def size(self, sha256: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    def delete(self, sha256: str) -> bool:
        key = self.key_for(sha256)
        existed = self.exists(sha256)
        self.client.delete_object(Bucket=self.bucket, Key=key)
        # On a versioned bucket the delete above only adds a delete marker; purge means the bytes
        # go, so remove every version of this key as well. Needs s3:ListBucketVersions and
        # s3:DeleteObjectVersion; without them the old versions stay and we say so.
        try:
            listing = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        except Exception:
            log.warning("could not list versions of %s; older versions may remain", key, exc_info=True)
            return existed
        for entry in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]:
            if entry.get("Key") == key and entry.get("VersionId") not in (None, "null"):
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=entry["VersionId"])
                existed = True
        return existed

    def iter_hashes(self) -> Iterator[str]:
        base = self._base
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
            for item in page.get("Contents", []):
                name = item["Key"][len(base) :]
                if _HASH_RE.fullmatch(name):
                    yield name

    def sweep_incomplete(self, older_than_seconds: float = 86400.0) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.tmp_prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        objects = self.client.get_paginator("list_objects_v2")
        for page in objects.paginate(Bucket=self.bucket, Prefix=self.tmp_prefix):
            for item in page.get("Contents", []):
                if item["LastModified"].timestamp() < cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed


# --------------------------------------------------------------------------------------------------


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def make_blob_store(settings: Settings) -> BlobStore:
    """``s3://bucket/prefix`` selects S3 (with ``settings.s3_endpoint_url`` if set); anything else is a
    local directory."""
    storage = settings.storage.strip()
    if storage.lower().startswith("s3://"):
        bucket, prefix = parse_s3_url("s3://" + storage[5:])
        return S3BlobStore(bucket, prefix, settings.s3_endpoint_url or None)
    return LocalBlobStore(storage)
