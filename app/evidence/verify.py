"""`claimdesk evidence verify`: prove the stored files are the files that were uploaded.

Every distinct hash a live (not purged) evidence row points at is read back in full and re-hashed;
a missing or different file is reported. Bytes left behind by a purge that crashed between its
commit and the delete are removed here (the tombstone is the record that they must go).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import col

from app.db import Database
from app.evidence.models import Evidence
from app.evidence.service import delete_unreferenced_bytes
from app.evidence.storage import BlobNotFound, BlobStore


@dataclass
class VerifyReport:
    checked: int = 0
    bytes_read: int = 0
    missing: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    purged_leftovers_removed: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupted


def _rehash(store: BlobStore, sha256: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in store.read_all(sha256):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def verify_store(database: Database, store: BlobStore) -> VerifyReport:
    report = VerifyReport()
    with database.read_session() as session:
        live = {
            sha
            for (sha,) in session.execute(
                sa.select(col(Evidence.sha256))
                .where(col(Evidence.sha256).is_not(None), col(Evidence.purged_at).is_(None))
                .distinct()
            )
            if sha
        }
        purged = {
            sha
            for (sha,) in session.execute(
                sa.select(col(Evidence.sha256))
                .where(col(Evidence.sha256).is_not(None), col(Evidence.purged_at).is_not(None))
                .distinct()
            )
            if sha
        } - live
    for sha in sorted(live):
        report.checked += 1
        try:
            actual, size = _rehash(store, sha)
        except BlobNotFound:
            report.missing.append(sha)
            continue
        report.bytes_read += size
        if actual != sha:
            report.corrupted.append(sha)
    for sha in sorted(purged):
        # Re-checked under the guard: the same bytes may have been uploaded again since the read.
        with database.transaction() as session:
            removed = delete_unreferenced_bytes(session, store, sha)
        if removed:
            report.purged_leftovers_removed.append(sha)
    known = live | purged
    report.unreferenced = sorted(h for h in store.iter_hashes() if h not in known)
    return report
