"""Fixtures for the evidence bytes layer: a real moto S3 server and both store adapters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.evidence.storage import BlobStore, LocalBlobStore, S3BlobStore

from . import site

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in AWS_ENV.items():
            patch.setenv(key, value)
        # Keep the SDK away from any developer profile or instance metadata.
        patch.setenv("AWS_CONFIG_FILE", os.devnull)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: None) -> Iterator[str]:
    """A moto S3 server in a subprocess on a free loopback port."""
    port = free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}")
            try:
                httpx.get(endpoint + "/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    S3BlobStore("unused", endpoint_url=moto_endpoint).client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_store(moto_endpoint: str, s3_bucket: str) -> S3BlobStore:
    return S3BlobStore(s3_bucket, "claimdesk/evidence", moto_endpoint)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "evidence")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> BlobStore:
    name = "local_store" if request.param == "local" else "s3_store"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def site_port() -> Iterator[int]:
    """The test app (upload + content routes) served by a real uvicorn on loopback."""
    with site.serve() as port:
        yield port


@pytest.fixture
def served(site_port: int) -> Callable[[BlobStore], str]:
    """Point the running test app at a store; returns its base URL."""

    def use(store: BlobStore) -> str:
        site.STATE.reset(store)
        return f"http://127.0.0.1:{site_port}"

    return use
