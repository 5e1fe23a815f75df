"""Evidence through the API, on both databases and both storage adapters: uploads read back byte
for byte (whole and by Range), bad uploads store nothing, retraction, purge with tombstones, links
and notes, and the verify command."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from app.errors import ServiceUnavailable
from app.evidence import service as evidence_service
from app.evidence.schemas import EvidenceIn
from app.evidence.service import StoredFile
from app.evidence.storage import BlobStore, LocalBlobStore, S3BlobStore
from app.evidence.verify import verify_store
from app.main import create_app
from tests.conftest import make_settings
from tests.evidence import samples
from tests.helpers import Journey

FILES = {
    "photo.png": (samples.png(64, 48), "image/png"),
    "frame.jpg": (samples.jpeg(), "image/jpeg"),
    "clip.mp4": (samples.mp4(b"\x01" * 300_000), "video/mp4"),
    "report.pdf": (samples.pdf(), "application/pdf"),
    "notes.txt": (samples.text(50), "text/plain"),
}


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "evidence")
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    request.getfixturevalue("monkeypatch").setenv("CLAIMDESK_S3_ENDPOINT_URL", endpoint)
    return f"s3://{bucket}/evidence"


@pytest.fixture
def evidence_app(db_url, tmp_path, database, storage_url, request):
    extra = {}
    if storage_url.startswith("s3://"):
        extra["s3_endpoint_url"] = request.getfixturevalue("moto_endpoint")
    settings = make_settings(db_url, tmp_path, storage=storage_url, max_upload_bytes=2_000_000, **extra)
    app = create_app(settings, database)
    app.state.owns_database = False
    app.state.start_worker = False
    return app


@pytest.fixture
def ej(evidence_app, desk):
    with TestClient(evidence_app, raise_server_exceptions=False) as client:
        yield Journey(client, desk)


def _upload(j: Journey, cid: int, name: str, data: bytes, who=None, **fields):
    return j.client.post(
        f"/api/v1/claims/{cid}/evidence",
        files={"file": (name, data, "application/octet-stream")},
        data=fields,
        headers=(who or j.checker).headers,
    )


def _store(j: Journey) -> BlobStore:
    return j.client.app.state.blob_store  # type: ignore[attr-defined,no-any-return]


def _rows(database) -> int:
    with database.read_session() as s:
        return int(s.execute(sa.text("SELECT count(*) FROM evidence")).scalar_one())


def test_upload_and_read_back_every_kind(ej: Journey, database) -> None:
    cid = ej.to_state("in_progress")
    for name, (data, media_type) in FILES.items():
        r = _upload(
            ej,
            cid,
            f"../../{name}",
            data,
            stance="supports",
            dimension="location",
            visibility="public",
            note="what it shows",
        )
        assert r.status_code == 201, r.text
        ev = r.json()
        assert ev["sha256"] == hashlib.sha256(data).hexdigest()
        assert (ev["size"], ev["media_type"], ev["filename"]) == (len(data), media_type, name)
        assert (ev["kind"], ev["stance"], ev["dimension"], ev["visibility"]) == (
            "file",
            "supports",
            "location",
            "public",
        )
        whole = ej.client.get(f"/api/v1/evidence/{ev['id']}/content", headers=ej.viewer.headers)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["etag"] == f'"{ev["sha256"]}"'
        assert whole.headers["content-length"] == str(len(data))
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert whole.headers["content-disposition"].startswith("attachment;")
        head = ej.client.head(f"/api/v1/evidence/{ev['id']}/content", headers=ej.viewer.headers)
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(data))
        part = ej.client.get(
            f"/api/v1/evidence/{ev['id']}/content", headers={**ej.viewer.headers, "Range": "bytes=5-24"}
        )
        end = min(24, len(data) - 1)
        assert part.status_code == 206 and part.content == data[5 : end + 1]
        assert part.headers["content-range"] == f"bytes 5-{end}/{len(data)}"
        tail = ej.client.get(
            f"/api/v1/evidence/{ev['id']}/content", headers={**ej.viewer.headers, "Range": "bytes=-10"}
        )
        assert tail.content == data[-10:]
        bad = ej.client.get(
            f"/api/v1/evidence/{ev['id']}/content", headers={**ej.viewer.headers, "Range": f"bytes={len(data) + 5}-"}
        )
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"
    events = ej.client.get(f"/api/v1/claims/{cid}/events?limit=500", headers=ej.viewer.headers).json()["items"]
    assert sum(e["type"] == "evidence.added" for e in events) == len(FILES)
    # the same bytes twice are stored once
    again = _upload(ej, cid, "copy.png", FILES["photo.png"][0])
    assert again.status_code == 201
    assert len([h for h in _store(ej).iter_hashes()]) == len(FILES)


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("big.png", samples.png() + b"\x00" * 2_100_000, 413),
        ("tool.exe", b"\x7fELF\x02\x01\x01" + b"\x00" * 200, 415),
        ("archive.zip", b"PK\x03\x04" + b"\x00" * 200, 415),
        ("empty.png", b"", 422),
    ],
)
def test_bad_uploads_store_nothing(ej: Journey, database, name: str, data: bytes, status: int) -> None:
    cid = ej.to_state("in_progress")
    before = _rows(database)
    r = _upload(ej, cid, name, data)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _rows(database) == before
    assert list(_store(ej).iter_hashes()) == []


def test_who_may_add_evidence(ej: Journey) -> None:
    mine = ej.create(ej.contributor)["id"]
    # a contributor on a claim they submitted, while submitted
    assert _upload(ej, mine, "shot.png", samples.png(), who=ej.contributor).status_code == 201
    other = ej.create(ej.editor)["id"]
    assert _upload(ej, other, "shot.png", samples.png(), who=ej.contributor).status_code == 403
    assert _upload(ej, mine, "shot.png", samples.png(), who=ej.viewer).status_code == 403
    ej.act(mine, "queue", ej.editor)
    assert _upload(ej, mine, "shot.png", samples.png(), who=ej.contributor).status_code == 403
    published = ej.to_state("published")
    assert _upload(ej, published, "late.png", samples.png()).status_code == 409
    assert _upload(ej, 999999, "x.png", samples.png()).status_code == 404
    assert (
        ej.client.post(
            f"/api/v1/claims/{mine}/evidence",
            content=b"x",
            headers={**ej.checker.headers, "content-type": "text/plain"},
        ).status_code
        == 415
    )


def test_links_notes_and_retraction(ej: Journey) -> None:
    cid = ej.to_state("in_progress")

    def post(body: dict, who=ej.checker):
        return ej.client.post(f"/api/v1/claims/{cid}/evidence", json=body, headers=who.headers)

    link = post(
        {
            "kind": "link",
            "url": "https://social.example/p/1",
            "archived_url": "https://archive.example/x",
            "accessed_at": "2026-11-20T10:00:00Z",
            "stance": "refutes",
            "dimension": "date",
        }
    )
    assert link.status_code == 201 and link.json()["url"] == "https://social.example/p/1"
    assert post({"kind": "link", "url": "ftp://files.example/x"}).status_code == 422
    assert post({"kind": "link"}).status_code == 422
    assert post({"kind": "note"}).status_code == 422
    assert post({"kind": "video", "note": "x"}).status_code == 422
    assert post({"kind": "note", "note": "x", "colour": 1}).status_code == 422
    eid = link.json()["id"]
    # only the author or an editor retracts; twice is 409
    assert (
        ej.client.post(f"/api/v1/evidence/{eid}/retract", json={"reason": "x"}, headers=ej.checker2.headers).status_code
        == 403
    )
    assert ej.client.post(f"/api/v1/evidence/{eid}/retract", json={}, headers=ej.checker.headers).status_code == 422
    r = ej.client.post(f"/api/v1/evidence/{eid}/retract", json={"reason": "Wrong post"}, headers=ej.checker.headers)
    assert r.status_code == 200 and r.json()["retracted"] is True and r.json()["retract_reason"] == "Wrong post"
    assert (
        ej.client.post(
            f"/api/v1/evidence/{eid}/retract", json={"reason": "again"}, headers=ej.editor.headers
        ).status_code
        == 409
    )
    listed = ej.client.get(f"/api/v1/claims/{cid}/evidence", headers=ej.viewer.headers).json()["items"]
    assert [e["retracted"] for e in listed] == [True]
    # Idempotency-Key on evidence posts
    h = {**ej.checker.headers, "Idempotency-Key": "note-1"}
    a = ej.client.post(f"/api/v1/claims/{cid}/evidence", json={"kind": "note", "note": "seen"}, headers=h)
    b = ej.client.post(f"/api/v1/claims/{cid}/evidence", json={"kind": "note", "note": "seen"}, headers=h)
    assert a.json()["id"] == b.json()["id"] and b.headers["idempotent-replayed"] == "true"
    c = ej.client.post(f"/api/v1/claims/{cid}/evidence", json={"kind": "note", "note": "other"}, headers=h)
    assert c.status_code == 422


def test_purge_destroys_bytes_and_keeps_a_tombstone(ej: Journey, database) -> None:
    cid = ej.to_state("in_progress")
    data = samples.png(32, 32)
    ev = _upload(ej, cid, "prisoner.png", data, note="faces visible").json()
    sha = ev["sha256"]
    assert _store(ej).exists(sha)
    assert (
        ej.client.post(
            f"/api/v1/evidence/{ev['id']}/purge", json={"reason": "x"}, headers=ej.editor.headers
        ).status_code
        == 403
    )
    r = ej.client.post(
        f"/api/v1/evidence/{ev['id']}/purge", json={"reason": "Court order 12/26"}, headers=ej.admin.headers
    )
    assert r.status_code == 200
    tomb = r.json()
    assert (tomb["purged"], tomb["sha256"], tomb["size"], tomb["note"], tomb["filename"]) == (
        True,
        sha,
        len(data),
        None,
        None,
    )
    assert tomb["purge_reason"] == "Court order 12/26" and tomb["purged_by"] == ej.admin.id
    assert not _store(ej).exists(sha)
    gone = ej.client.get(f"/api/v1/evidence/{ev['id']}/content", headers=ej.viewer.headers)
    assert gone.status_code == 410 and gone.json()["sha256"] == sha
    types = [
        e["type"]
        for e in ej.client.get(f"/api/v1/claims/{cid}/events?limit=500", headers=ej.viewer.headers).json()["items"]
    ]
    assert "evidence.purged" in types
    report = verify_store(database, _store(ej))
    assert report.ok and report.missing == [] and report.corrupted == []


def _second_copy_arrives(store: BlobStore, data: bytes) -> StoredFile:
    """An upload of bytes already stored, up to the point its file is committed (and skipped)."""
    writer = store.begin()
    writer.write(data)
    blob = writer.commit()
    return StoredFile(blob.sha256, blob.size, "image/png", "again.png")


def test_purge_racing_an_upload_of_the_same_bytes_loses_nothing(ej: Journey, database) -> None:
    cid = ej.to_state("in_progress")
    data = samples.png(24, 24)
    first = _upload(ej, cid, "first.png", data).json()
    store = _store(ej)
    settings = ej.client.app.state.settings  # type: ignore[attr-defined]

    # The purge deletes the bytes after the second upload found them present and skipped writing.
    copy = _second_copy_arrives(store, data)
    purge = ej.client.post(f"/api/v1/evidence/{first['id']}/purge", json={"reason": "r"}, headers=ej.admin.headers)
    assert purge.status_code == 200 and not store.exists(copy.sha256)
    before = _rows(database)
    with pytest.raises(ServiceUnavailable), database.transaction() as session:
        evidence_service.add_evidence(
            session,
            principal=ej.checker.principal,
            claim_id=cid,
            data=EvidenceIn(kind="note"),
            settings=settings,
            stored=copy,
            store=store,
        )
    assert _rows(database) == before  # nothing recorded that points at missing bytes
    # The client's retry writes the bytes again.
    again = _upload(ej, cid, "again.png", data)
    assert again.status_code == 201
    assert ej.client.get(f"/api/v1/evidence/{again.json()['id']}/content", headers=ej.viewer.headers).content == data

    # The other order: the second row lands before the purge, so the purge keeps the bytes.
    third_copy = _second_copy_arrives(store, data)
    with database.transaction() as session:
        row = evidence_service.add_evidence(
            session,
            principal=ej.checker.principal,
            claim_id=cid,
            data=EvidenceIn(kind="note"),
            settings=settings,
            stored=third_copy,
            store=store,
        )
        third_id = row.id
    purge = ej.client.post(
        f"/api/v1/evidence/{again.json()['id']}/purge", json={"reason": "r"}, headers=ej.admin.headers
    )
    assert purge.status_code == 200 and store.exists(data_sha := hashlib.sha256(data).hexdigest())
    assert ej.client.get(f"/api/v1/evidence/{third_id}/content", headers=ej.viewer.headers).content == data
    report = verify_store(database, store)
    assert report.ok and data_sha not in report.purged_leftovers_removed


def test_verify_finds_missing_and_corrupted_files(ej: Journey, database) -> None:
    cid = ej.to_state("in_progress")
    a = _upload(ej, cid, "a.png", samples.png(8, 8)).json()
    b = _upload(ej, cid, "b.pdf", samples.pdf()).json()
    store = _store(ej)
    assert verify_store(database, store).ok
    if isinstance(store, LocalBlobStore):
        path = next(p for p in Path(store.root).rglob(a["sha256"]))
        path.chmod(0o600)
        path.write_bytes(b"tampered")
    else:
        assert isinstance(store, S3BlobStore)
        store.client.put_object(Bucket=store.bucket, Key=store.key_for(a["sha256"]), Body=b"tampered")
    store.delete(b["sha256"])
    report = verify_store(database, store)
    assert not report.ok
    assert report.corrupted == [a["sha256"]] and report.missing == [b["sha256"]]


def test_client_disconnect_mid_upload_leaves_nothing(db_url, tmp_path, database, desk) -> None:
    settings = make_settings(db_url, tmp_path, storage=str(tmp_path / "store"))
    app = create_app(settings, database)
    app.state.owns_database = False
    app.state.start_worker = False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with TestClient(app) as tc:
            j = Journey(tc, desk)
            cid = j.to_state("in_progress")
        boundary = "cdboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        body_len = len(head) + 1_000_000
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            (
                f"POST /api/v1/claims/{cid}/evidence HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {j.checker.key}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {body_len}\r\n\r\n"
            ).encode()
            + head
            + samples.mp4(b"\x02" * 300_000)
        )
        time.sleep(0.3)
        sock.close()
        time.sleep(0.5)
        store = app.state.blob_store
        assert list(store.iter_hashes()) == []
        assert (
            not any(p.is_file() for p in (Path(store.root) / "tmp").rglob("*"))
            if (Path(store.root) / "tmp").exists()
            else True
        )
        assert _rows(database) == 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
