"""Shared assertions for the evidence tests."""

from __future__ import annotations

from typing import Any

from app.evidence.storage import BlobStore, LocalBlobStore, S3BlobStore


def leftovers(store: BlobStore) -> dict[str, Any]:
    """Everything a failed upload could leave behind: staged files/objects and open uploads."""
    if isinstance(store, LocalBlobStore):
        return {"tmp": sorted(p.name for p in store.tmp_dir.iterdir())}
    assert isinstance(store, S3BlobStore)
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    objects = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.tmp_prefix).get("Contents", [])
    return {"uploads": [u["Key"] for u in uploads], "tmp": [o["Key"] for o in objects]}


def is_clean(store: BlobStore) -> bool:
    return all(not value for value in leftovers(store).values())
