"""claims_api: POST /api/v1/claims and GET /api/v1/claims/{id} under wrk, against their floors.

Started side by side in this run, each in its own uvicorn process on loopback:
* the bare floor (bench/floor_app.py): constant answers from an ``async def`` and a ``def`` route;
* the naive floor (bench/naive_app.py): FastAPI + SQLModel inserting one row (``def``, Session,
  commit, refresh) and reading one row by id (``Session.get``), on this run's database kind;
* Claimdesk itself (``claimdesk serve`` with its defaults): POST authenticates the API key, writes
  the claim, its audit event and outbox event in one transaction (and runs the duplicate check);
  GET authenticates and reads one claim with its reviewers.

Each load is wrk with 2 threads and 16 connections for a few seconds after a one-second warm-up;
POST bodies carry a text unique to each request: a number and 8-14 words from a 2,000-word
pseudo vocabulary, so the duplicate check finds candidates without every claim being a duplicate.
Reported: requests/s, p50 and p99 latency, the server's CPU per request, and the ratios to the
floors (targets: Claimdesk at least 2x the naive SQLModel floor for both, from the performance
brief).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    BENCH_DIR,
    LOOPBACK,
    BenchError,
    Desk,
    Metric,
    die_with_parent,
    expect,
    free_port,
    log,
    stop_process,
)
from bench.wrkload import WrkResult, run_wrk

NAME = "claims_api"
DESCRIPTION = "POST and GET /claims under wrk against the bare FastAPI and naive SQLModel floors"
TARGET_RATIO = 2.0
POST_BODY = '{"text": "Claim {n}: {words}"}'
NAIVE_BODY = '{"text": "Row {n}: {words}"}'


def start_uvicorn(app_ref: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """``uvicorn app_ref`` on a free loopback port, access log off; returns once it answers."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603  # this interpreter running uvicorn on our own module
        [sys.executable, "-m", "uvicorn", app_ref, "--host", LOOPBACK, "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=BENCH_DIR.parent,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{app_ref} exited with {proc.returncode}")
        try:
            httpx.get(f"http://{LOOPBACK}:{port}/openapi.json", timeout=1, trust_env=False).raise_for_status()
            return proc, port
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                stop_process(proc)
                raise BenchError(f"{app_ref} did not come up") from None
            time.sleep(0.1)


def _load(name: str, base: str, paths: list[str], pid: int, seconds: float, **kwargs: Any) -> WrkResult:
    run_wrk(base, paths, seconds=1, **kwargs)  # warm-up: connections, pools, caches
    result = run_wrk(base, paths, seconds=seconds, server_pid=pid, **kwargs)
    log(
        f"{NAME}: {name}: {result.rate:,.0f} req/s, p50 {result.latency_ms['p50']:.2f} ms, "
        f"p99 {result.latency_ms['p99']:.2f} ms, errors {result.errors or 0}"
    )
    return result


def run(desk: Desk, *, quick: bool) -> tuple[list[Metric], dict[str, Any]]:
    seconds = 3.0 if quick else 6.0
    desk.migrate()
    admin_key = desk.create_user("admin@bench.test", "admin")
    naive_url = f"sqlite:///{Path(desk.workdir) / 'naive.db'}" if desk.kind == "sqlite" else desk.database_url
    floor_proc = naive_proc = None
    results: dict[str, WrkResult] = {}
    try:
        floor_proc, floor_port = start_uvicorn("bench.floor_app:app")
        naive_proc, naive_port = start_uvicorn("bench.naive_app:app", {"NAIVE_DATABASE_URL": naive_url})
        floor_base = f"http://{LOOPBACK}:{floor_port}"
        naive_base = f"http://{LOOPBACK}:{naive_port}"
        with desk.serving(), desk.client(admin_key) as admin:
            claim = expect(admin.post("/api/v1/claims", json={"text": "The claim every GET reads"}), 201)
            naive_item = httpx.post(f"{naive_base}/items", json={"text": "the row every GET reads"}, trust_env=False)
            naive_item.raise_for_status()
            auth = f"Bearer {admin_key}"
            results["bare async def GET"] = _load("bare async", floor_base, ["/async"], floor_proc.pid, seconds)
            results["bare def GET"] = _load("bare def", floor_base, ["/def"], floor_proc.pid, seconds)
            results["naive SQLModel POST"] = _load(
                "naive POST", naive_base, ["/items"], naive_proc.pid, seconds, method="POST", body=NAIVE_BODY
            )
            results["Claimdesk POST /claims"] = _load(
                "claimdesk POST", desk.base_url, ["/api/v1/claims"], desk.pid, seconds,
                method="POST", body=POST_BODY, auth=auth,
            )  # fmt: skip
            results["naive SQLModel GET"] = _load(
                "naive GET", naive_base, [f"/items/{naive_item.json()['id']}"], naive_proc.pid, seconds
            )
            results["Claimdesk GET /claims/{id}"] = _load(
                "claimdesk GET", desk.base_url, [f"/api/v1/claims/{claim['id']}"], desk.pid, seconds, auth=auth
            )
    finally:
        stop_process(naive_proc, grace=5)
        stop_process(floor_proc, grace=5)

    metrics: list[Metric] = []
    for label, r in results.items():
        metrics.append(Metric(f"{label}: throughput", round(r.rate, 1), "req/s"))
        metrics.append(Metric(f"{label}: p50", r.latency_ms["p50"], "ms"))
        metrics.append(Metric(f"{label}: p99", r.latency_ms["p99"], "ms"))
        if r.cpu_ms_per_request is not None:
            metrics.append(Metric(f"{label}: server CPU per request", r.cpu_ms_per_request, "ms"))

    def ratio(a: str, b: str) -> float:
        return round(results[a].rate / results[b].rate, 2) if results[b].rate else float("nan")

    metrics += [
        Metric("POST /claims / naive SQLModel POST", ratio("Claimdesk POST /claims", "naive SQLModel POST"), "x",
               f">= {TARGET_RATIO}"),
        Metric("POST /claims / bare async def GET", ratio("Claimdesk POST /claims", "bare async def GET"), "x"),
        Metric("GET /claims/{id} / naive SQLModel GET", ratio("Claimdesk GET /claims/{id}", "naive SQLModel GET"),
               "x", f">= {TARGET_RATIO}"),
        Metric("GET /claims/{id} / bare async def GET", ratio("Claimdesk GET /claims/{id}", "bare async def GET"),
               "x"),
        Metric("GET /claims/{id} / bare def GET", ratio("Claimdesk GET /claims/{id}", "bare def GET"), "x"),
    ]  # fmt: skip
    failed = {label: r.errors for label, r in results.items() if r.failed}
    metrics.append(Metric("failed requests (non-2xx, socket errors)", sum(r.failed for r in results.values()),
                          check=not failed))  # fmt: skip
    details = {
        "wrk": {"threads": 2, "connections": 16, "seconds": seconds},
        "loads": {label: r.to_json() for label, r in results.items()},
        "failures": failed,
    }
    return metrics, details
