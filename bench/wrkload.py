"""Driving wrk (Debian's package) from the benchmarks: one function, one Lua script (wrk/load.lua).

Every load uses the settings of the performance brief, 2 threads and 16 connections, unless a
scenario says otherwise, and wrk's timeout is raised to 30 s so that a slow answer is counted in the
latencies rather than dropped as a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import BENCH_DIR, BenchError, process_cpu_seconds

SCRIPT = BENCH_DIR / "wrk" / "load.lua"
THREADS = 2
CONNECTIONS = 16


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    server_cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.requests:
            return None
        return round(self.server_cpu_seconds / self.requests * 1000, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.rate, 1),
            "errors": self.errors,
            "latency_ms": self.latency_ms,
            "server_cpu_ms_per_request": self.cpu_ms_per_request,
        }


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    base_url: str,
    paths: list[str],
    *,
    seconds: float,
    method: str = "GET",
    body: str | None = None,
    auth: str | None = None,
    threads: int = THREADS,
    connections: int = CONNECTIONS,
    server_pid: int | None = None,
) -> WrkResult:
    """One wrk run against ``base_url`` taking ``paths`` in turn; returns its summary."""
    exe = shutil.which("wrk")
    if exe is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    if any("|" in p for p in paths):
        raise BenchError("a wrk path may not contain '|'")
    with tempfile.TemporaryDirectory(prefix="claimdesk-wrk-") as tmp:
        report = Path(tmp) / "report.json"
        env = dict(os.environ)
        env.update(WRK_METHOD=method, WRK_PATHS="|".join(paths), WRK_REPORT=str(report))
        if body is not None:
            env["WRK_BODY"] = body
        if auth is not None:
            env["WRK_AUTH"] = auth
        cpu_before = process_cpu_seconds(server_pid) if server_pid else None
        done = subprocess.run(  # noqa: S603  # wrk with fixed arguments
            [exe, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
             "-s", str(SCRIPT), base_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 90,
            check=False,
        )  # fmt: skip
        cpu = process_cpu_seconds(server_pid) - cpu_before if server_pid and cpu_before is not None else None
        if done.returncode != 0 or not report.exists():
            raise BenchError(f"wrk failed ({done.returncode}): {done.stderr[-1000:]}{done.stdout[-1000:]}")
        data = json.loads(report.read_text())
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        errors={k: int(v) for k, v in data["errors"].items() if v},
        latency_ms={k: round(v / 1000.0, 3) for k, v in data["latency_us"].items()},
        server_cpu_seconds=cpu,
    )
