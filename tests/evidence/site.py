"""A tiny Starlette app exposing the evidence helpers the way the real routes will, run by uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.errors import DomainError, Gone
from app.evidence.download import blob_response
from app.evidence.storage import BlobNotFound, BlobStore
from app.evidence.upload import ingest_upload


class State:
    def __init__(self) -> None:
        self.store: BlobStore | None = None
        self.events: list[tuple[Any, ...]] = []
        self.done = threading.Event()

    def reset(self, store: BlobStore) -> None:
        self.store = store
        self.events = []
        self.done.clear()


STATE = State()


def problem(exc: DomainError) -> JSONResponse:
    return JSONResponse(exc.to_problem(), status_code=exc.status, headers=exc.headers)


async def upload(request: Request) -> Response:
    assert STATE.store is not None
    max_bytes = int(request.query_params.get("max", str(10 * 1024 * 1024)))
    try:
        result = await ingest_upload(request, STATE.store, max_bytes=max_bytes)
    except DomainError as exc:
        STATE.events.append(("error", exc.status))
        return problem(exc)
    except ClientDisconnect:
        STATE.events.append(("disconnect",))
        return Response(status_code=499)  # nobody is listening any more
    finally:
        STATE.done.set()
    STATE.events.append(("stored", result.blob.sha256))
    return JSONResponse(
        {
            "sha256": result.blob.sha256,
            "size": result.blob.size,
            "media_type": result.media_type,
            "filename": result.filename,
            "fields": result.fields,
        }
    )


async def content(request: Request) -> Response:
    assert STATE.store is not None
    query = request.query_params
    try:
        return await blob_response(
            request,
            STATE.store,
            sha256=request.path_params["sha256"],
            media_type=query.get("type", "application/octet-stream"),
            filename=query.get("name"),
            size=int(query["size"]) if "size" in query else None,
        )
    except DomainError as exc:
        return problem(exc)
    except BlobNotFound:
        return problem(Gone("the evidence bytes were purged"))


app = Starlette(
    routes=[
        Route("/upload", upload, methods=["POST"]),
        Route("/content/{sha256}", content, methods=["GET"]),  # Starlette adds HEAD
    ]
)


@contextmanager
def serve() -> Iterator[int]:
    """Run ``app`` with uvicorn on a free loopback port in a background thread; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
