"""Measure the floor (bench/floor_app.py) once per run: one caller on one keep-alive connection, the
same raw client as the scenarios, 1,000 GETs per route after 100 to warm up.

Reported per route: median latency and the server's CPU time per request. Claimdesk's numbers are
then read against these (queue_next reports its one-caller p50 as a multiple of the ``def`` floor).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.harness import (
    BENCH_DIR,
    LOOPBACK,
    BenchError,
    Metric,
    ScenarioResult,
    die_with_parent,
    free_port,
    log,
    process_cpu_seconds,
    stop_process,
)
from bench.rawhttp import Connection

NAME = "floor"
ROUTES = ("/def", "/async")
WARMUP = 100
CALLS = 1000


def start_floor(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: S603  # this interpreter running uvicorn on our own module
        [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--host", LOOPBACK, "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=BENCH_DIR.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise BenchError(f"the floor app exited with {proc.returncode}")
        try:
            httpx.get(f"http://{LOOPBACK}:{port}/def", timeout=1, trust_env=False).raise_for_status()
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                stop_process(proc)
                raise BenchError("the floor app did not come up") from None
            time.sleep(0.1)


async def _time_route(port: int, pid: int, path: str) -> dict[str, float]:
    conn = Connection(LOOPBACK, port)
    try:
        for _ in range(WARMUP):
            await conn.request("GET", path)
        cpu_before = process_cpu_seconds(pid)
        latencies = []
        for _ in range(CALLS):
            t0 = time.perf_counter()
            response = await conn.request("GET", path)
            latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                raise BenchError(f"floor {path} -> {response.status}")
        cpu = process_cpu_seconds(pid) - cpu_before
    finally:
        await conn.close()
    return {"p50_ms": round(statistics.median(latencies) * 1000, 3), "cpu_ms": round(cpu / CALLS * 1000, 3)}


def measure() -> ScenarioResult:
    started = time.perf_counter()
    port = free_port()
    proc = start_floor(port)
    try:
        timings: dict[str, Any] = {path: asyncio.run(_time_route(port, proc.pid, path)) for path in ROUTES}
    finally:
        stop_process(proc, grace=5)
    log(f"floor: def {timings['/def']['p50_ms']:.2f} ms, async {timings['/async']['p50_ms']:.2f} ms")
    metrics = []
    for path, label in (("/def", "bare FastAPI `def` GET"), ("/async", "bare FastAPI `async def` GET")):
        metrics.append(Metric(f"{label}: p50, one caller", timings[path]["p50_ms"], "ms"))
        metrics.append(Metric(f"{label}: server CPU per request", timings[path]["cpu_ms"], "ms"))
    return ScenarioResult(NAME, "-", False, metrics, {"routes": timings}, time.perf_counter() - started)
