"""evidence_io: one large evidence file up and down through the API, and the server's memory meanwhile.

1. A file of pseudo-random bytes (1 GiB; 128 MiB with --quick) is written to a temp file and hashed
   as it is written. One 64 MiB random block is repeated, each copy with a fresh random 4 KiB head,
   so no two blocks are equal and no compressor finds anything to squeeze. The first bytes are an
   ISO-BMFF ``ftyp`` box, so the server's sniffer sees an MP4 video (random bytes alone are refused).
2. Setup as a desk does it: admin, editor and checker from ``claimdesk user create``; the editor
   submits and queues a claim, the checker starts it (in_progress, assigned to the checker).
3. The checker uploads the file as the multipart part ``file`` to POST /claims/{id}/evidence. The
   body is a generator (the multipart framing around 1 MiB reads of the file) with a Content-Length,
   so the client never holds the file. The server runs with CLAIMDESK_MAX_UPLOAD_BYTES = 2 GiB.
4. GET /evidence/{id}/content is streamed and re-hashed; the hash must match, as must the ETag.
5. A Range read of the middle 1 MiB must come back 206 with exactly those bytes.

Before the server starts, the file is copied into the workdir with fsync: the "disk floor", the best
a durable upload can do on this disk; the upload is also reported as a ratio to it.

The server's RSS is sampled every 10 ms during 3 and 4; growth is measured against its RSS just
before each transfer (after a warm-up request), i.e. "what does moving this file cost in memory".
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import Desk, GiB, Metric, MiB, RssSampler, expect, log, rss_bytes

NAME = "evidence_io"
DESCRIPTION = "1 GiB evidence upload and download (streamed), Range read, server RSS growth"

BLOCK = 64 * MiB
HEAD = 4096
IO_CHUNK = 1 * MiB
# A 24-byte ISO base media 'ftyp' box: major brand isom, compatible isom/iso2 -> video/mp4.
FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"

TARGET_MIB_S = 200
TARGET_RSS_GROWTH_MIB = 64


def write_random_file(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes to ``path``; return their SHA-256."""
    block = os.urandom(min(BLOCK, size))
    digest = hashlib.sha256()
    view = memoryview(block)
    with path.open("wb") as out:
        written = 0
        index = 0
        while written < size:
            n = min(len(block), size - written)
            lead = FTYP if index == 0 else b""
            head = lead + os.urandom(min(HEAD, n) - len(lead))
            for piece in (head, view[len(head) : n]):
                digest.update(piece)
                out.write(piece)
            written += n
            index += 1
        # Durable now, so its write-back does not compete with the floor or the upload for the disk.
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def multipart_stream(path: Path, boundary: str, filename: str, marks: dict[str, float]) -> tuple[Iterator[bytes], int]:
    """The multipart/form-data body for one ``file`` part, as a generator, and its exact length.
    ``marks["last_byte"]`` is set when the generator hands over its last bytes."""
    size = path.stat().st_size
    preamble = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="note"\r\n\r\n'
        f"benchmark upload of {size} bytes\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: video/mp4\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield preamble
        with path.open("rb") as source:
            while chunk := source.read(IO_CHUNK):
                yield chunk
        marks["last_byte"] = time.perf_counter()
        yield epilogue

    return body(), len(preamble) + size + len(epilogue)


def disk_floor(source: Path, folder: Path) -> float:
    """MiB/s of copying ``source`` into ``folder`` in 1 MiB writes and fsyncing it: what the storage
    disk allows a durable upload at best (the server hashes, writes and fsyncs the same way)."""
    target = folder / "disk-floor.bin"
    started = time.perf_counter()
    try:
        with source.open("rb") as reader, target.open("wb") as writer:
            while chunk := reader.read(IO_CHUNK):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        return source.stat().st_size / MiB / (time.perf_counter() - started)
    finally:
        target.unlink(missing_ok=True)


def read_range(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as source:
        source.seek(start)
        return source.read(length)


def run(desk: Desk, *, quick: bool) -> tuple[list[Metric], dict[str, object]]:
    size = 128 * MiB if quick else 1 * GiB
    desk.extra_env["CLAIMDESK_MAX_UPLOAD_BYTES"] = str(2 * GiB)
    source = desk.workdir / "upload.bin"

    started = time.perf_counter()
    expected_sha = write_random_file(source, size)
    log(f"{NAME}: wrote {size // MiB} MiB of test data in {time.perf_counter() - started:.1f} s")

    floor_mib_s = disk_floor(source, desk.workdir)
    log(f"{NAME}: disk floor (copy + fsync) {floor_mib_s:.0f} MiB/s")

    desk.migrate()
    admin_key = desk.create_user("admin@bench.test", "admin")
    editor_key = desk.create_user("editor@bench.test", "editor")
    checker_key = desk.create_user("checker@bench.test", "checker")

    metrics: list[Metric] = []
    details: dict[str, object] = {"file_bytes": size}
    with desk.serving(), desk.client(editor_key) as editor, desk.client(checker_key, timeout=600) as checker:
        with desk.client(admin_key) as admin:
            expect(admin.get("/api/v1/me"), 200)
        claim = expect(editor.post("/api/v1/claims", json={"text": "The archive video shows the 2019 flood."}), 201)
        expect(editor.post(f"/api/v1/claims/{claim['id']}/actions/queue"), 200)
        started_claim = expect(checker.post(f"/api/v1/claims/{claim['id']}/actions/start"), 200)
        if started_claim["state"] != "in_progress":
            raise RuntimeError(f"claim did not start: {started_claim['state']}")
        expect(checker.get(f"/api/v1/claims/{claim['id']}"), 200)  # warm the connection and the key
        time.sleep(0.5)

        # -- upload ------------------------------------------------------------------------------
        boundary = "benchboundary" + secrets.token_hex(12)
        marks: dict[str, float] = {}
        body, length = multipart_stream(source, boundary, "flood.mp4", marks)
        with RssSampler(desk.pid) as upload_rss:
            t0 = time.perf_counter()
            response = checker.post(
                f"/api/v1/claims/{claim['id']}/evidence",
                content=body,
                headers={
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(length),
                },
            )
            answered = time.perf_counter()
            upload_s = answered - t0
        evidence = expect(response, 201)
        upload_mib_s = size / MiB / upload_s
        log(f"{NAME}: upload {upload_mib_s:.0f} MiB/s, RSS +{upload_rss.growth / MiB:.1f} MiB")
        details["upload"] = {
            "seconds": round(upload_s, 3),
            "after_last_byte_seconds": round(answered - marks.get("last_byte", answered), 3),
            "idle_rss_mib": round(upload_rss.start_rss / MiB, 1),
            "peak_rss_mib": round(upload_rss.peak / MiB, 1),
            "rss_samples": upload_rss.samples,
            "server_cpu_seconds": round(upload_rss.cpu_seconds, 2),
            "media_type": evidence.get("media_type"),
        }
        stored_sha_ok = evidence.get("sha256") == expected_sha and evidence.get("size") == size

        # -- download ----------------------------------------------------------------------------
        time.sleep(0.5)
        digest = hashlib.sha256()
        received = 0
        with RssSampler(desk.pid) as download_rss:
            t0 = time.perf_counter()
            with checker.stream(
                "GET", f"/api/v1/evidence/{evidence['id']}/content", headers={"Accept-Encoding": "identity"}
            ) as stream:
                if stream.status_code != 200:
                    stream.read()
                    raise RuntimeError(f"download -> {stream.status_code}: {stream.text[:300]}")
                etag = stream.headers.get("etag", "")
                for chunk in stream.iter_bytes():
                    digest.update(chunk)
                    received += len(chunk)
            download_s = time.perf_counter() - t0
        download_mib_s = size / MiB / download_s
        download_ok = digest.hexdigest() == expected_sha and received == size and expected_sha in etag
        log(f"{NAME}: download {download_mib_s:.0f} MiB/s, RSS +{download_rss.growth / MiB:.1f} MiB")
        details["download"] = {
            "seconds": round(download_s, 3),
            "idle_rss_mib": round(download_rss.start_rss / MiB, 1),
            "peak_rss_mib": round(download_rss.peak / MiB, 1),
            "rss_samples": download_rss.samples,
            "server_cpu_seconds": round(download_rss.cpu_seconds, 2),
            "etag": etag,
        }

        # -- range -------------------------------------------------------------------------------
        start = size // 2 - MiB // 2
        end = start + MiB - 1
        t0 = time.perf_counter()
        ranged = checker.get(
            f"/api/v1/evidence/{evidence['id']}/content",
            headers={"Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"},
        )
        range_ms = (time.perf_counter() - t0) * 1000
        range_ok = (
            ranged.status_code == 206
            and ranged.headers.get("content-range") == f"bytes {start}-{end}/{size}"
            and ranged.content == read_range(source, start, MiB)
        )
        details["range"] = {"status": ranged.status_code, "content_range": ranged.headers.get("content-range")}
        final_rss = rss_bytes(desk.pid)

    source.unlink(missing_ok=True)
    label = f"{size // MiB} MiB"
    metrics += [
        Metric("disk floor: copy + fsync, no server", round(floor_mib_s, 1), "MiB/s"),
        Metric(f"upload {label}", round(upload_mib_s, 1), "MiB/s", f">= {TARGET_MIB_S}"),
        Metric("upload / disk floor", round(upload_mib_s / floor_mib_s, 2), "x"),
        Metric("upload: answer after last byte sent", round(answered - marks.get("last_byte", answered), 2), "s"),
        Metric("upload peak RSS growth", round(upload_rss.growth / MiB, 1), "MiB", f"<= {TARGET_RSS_GROWTH_MIB}"),
        Metric("upload stored sha256 and size", "match" if stored_sha_ok else "MISMATCH", check=stored_sha_ok),
        Metric(f"download {label}", round(download_mib_s, 1), "MiB/s", f">= {TARGET_MIB_S}"),
        Metric("download peak RSS growth", round(download_rss.growth / MiB, 1), "MiB", f"<= {TARGET_RSS_GROWTH_MIB}"),
        Metric("download sha256 re-hashed", "match" if download_ok else "MISMATCH", check=download_ok),
        Metric("Range read middle 1 MiB", round(range_ms, 1), "ms", check=range_ok),
        Metric("server RSS at the end", round(final_rss / MiB, 1), "MiB", "<= 200"),
    ]
    return metrics, details
