"""Running Claimdesk the way a user does, and measuring it from the outside.

* :func:`fresh_database` gives each run its own database: a SQLite file in the run's temp folder, or
  a new PostgreSQL database ``claimdesk_bench_<pid>`` created and dropped around the run.
* :class:`Desk` is one Claimdesk installation (database + storage folder + environment). It runs
  the ``claimdesk`` CLI and ``claimdesk serve`` as subprocesses on 127.0.0.1, on a free port, and
  always stops what it started.
* :class:`RssSampler` samples a process's resident set (``VmRSS`` in ``/proc/PID/status``) in a
  thread and keeps the peak.
* :func:`percentile`, :class:`Metric` and :func:`save_results` turn measurements into the printed
  table and ``bench/results/latest.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
MiB = 1024 * 1024
GiB = 1024 * MiB
LOOPBACK = "127.0.0.1"
POSTGRES_ENV = ("CLAIMDESK_BENCH_POSTGRES_URL", "CLAIMDESK_TEST_POSTGRES_URL")


class BenchError(RuntimeError):
    """The benchmark could not be run (setup failed), as opposed to a slow or failed result."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Executables and ports
# --------------------------------------------------------------------------------------------------


def claimdesk_executable() -> str:
    """The ``claimdesk`` console script next to the running interpreter (the project's venv)."""
    beside = Path(sys.executable).with_name("claimdesk")
    if beside.exists():
        return str(beside)
    found = shutil.which("claimdesk")
    if found is None:
        raise BenchError("the claimdesk console script is not installed (run `make` in the project first)")
    return found


def die_with_parent() -> None:
    """For Popen's preexec_fn: SIGTERM this child when the benchmark process dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG), so nothing outlives an interrupted run."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[Any] | None, *, grace: float = 20.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Safe to call twice."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"process {proc.pid} ignored SIGTERM for {grace:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------------


def postgres_admin_url() -> str | None:
    for name in POSTGRES_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _sqlalchemy_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _libpq_url(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(_sqlalchemy_url(url)).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """Yield the SQLAlchemy URL of an empty database of ``kind`` that is removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'claimdesk.db'}"
        return
    if kind != "postgresql":
        raise BenchError(f"unknown database kind {kind!r}")
    admin = postgres_admin_url()
    if admin is None:
        raise BenchError(f"set {POSTGRES_ENV[0]} to run on PostgreSQL")
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"claimdesk_bench_{os.getpid()}"

    def admin_execute(statement: str) -> None:
        with psycopg.connect(_libpq_url(admin), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # built from our pid, not from input

    admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin_execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(_sqlalchemy_url(admin)).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except Exception as exc:
            log(f"could not drop {name}: {exc}")


def sql_engine(url: str) -> Any:
    """A plain SQLAlchemy engine for seeding and checking (not the app's engine setup)."""
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 60})
    return sa.create_engine(url)


def pg_sessions(url: str) -> int | None:
    """Sessions (connections) established to this PostgreSQL database so far; None on SQLite. The
    query's own connection is not counted (it is subtracted)."""
    if url.startswith("sqlite"):
        return None
    import sqlalchemy as sa

    engine = sql_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            ).scalar()
    finally:
        engine.dispose()
    return int(value or 0) - 1


# --------------------------------------------------------------------------------------------------
# One Claimdesk installation
# --------------------------------------------------------------------------------------------------


@dataclass
class Desk:
    """A Claimdesk installation in ``workdir`` on ``database_url``, run through its CLI."""

    kind: str
    database_url: str
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # The bare FastAPI `def` GET latency measured at the start of the run (bench/floor.py), if any.
    floor_p50_ms: float | None = None
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        # The caller's CLAIMDESK_* settings must not leak into the benchmark's installation.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
        env.update(
            CLAIMDESK_DATABASE_URL=self.database_url,
            CLAIMDESK_STORAGE=str(self.workdir / "evidence"),
            CLAIMDESK_RATE_LIMIT_WRITES="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise BenchError("the server is not running")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("the server is not running")
        return self.proc.pid

    def cli(self, *args: str, timeout: float = 300.0) -> str:
        """Run ``claimdesk ARGS`` (cwd = the workdir, so no stray .env is read); return stdout."""
        done = subprocess.run(  # noqa: S603  # our own console script, fixed arguments
            [claimdesk_executable(), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"claimdesk {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return done.stdout

    def migrate(self) -> None:
        self.cli("migrate")

    def create_user(self, email: str, role: str, name: str | None = None) -> str:
        """``claimdesk user create``; the API key is the last line of its output."""
        out = self.cli("user", "create", "--email", email, "--name", name or email.split("@")[0], "--role", role)
        return out.strip().splitlines()[-1].strip()

    # -- the server ---------------------------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> None:
        """``claimdesk serve`` with its defaults (in-process worker on); returns once /readyz is 200."""
        if self.proc is not None:
            raise BenchError("already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log_file = (self.workdir / "server.log").open("ab")
        try:
            self.proc = subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
                [claimdesk_executable(), "serve", "--host", LOOPBACK, "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a ^C to the bench reaches us; we stop the server ourselves
                preexec_fn=die_with_parent,
            )
        finally:
            log_file.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(f"claimdesk serve exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        log(f"claimdesk serve ready: pid {self.proc.pid}, {self.base_url}")
                        return
                if time.monotonic() > deadline:
                    raise BenchError(f"claimdesk serve not ready after {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    @contextlib.contextmanager
    def serving(self) -> Iterator[Desk]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "server.log"
        if not path.exists():
            return "(no server log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def client(self, key: str, *, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            trust_env=False,
        )


def expect(response: httpx.Response, *statuses: int) -> Any:
    """The JSON body of ``response``, or a BenchError naming what went wrong."""
    if response.status_code not in statuses:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def create_users_via_api(admin: httpx.Client, role: str, count: int, prefix: str) -> list[tuple[int, str]]:
    """``count`` users of ``role`` through the API (the CLI starts a Python process per user);
    returns (user id, API key) pairs."""
    users: list[tuple[int, str]] = []
    for i in range(count):
        user = expect(
            admin.post(
                "/api/v1/users", json={"email": f"{prefix}{i}@bench.test", "name": f"{prefix} {i}", "role": role}
            ),
            201,
        )
        key = expect(admin.post(f"/api/v1/users/{user['id']}/api-keys", json={"name": "bench"}), 201)
        users.append((user["id"], key["key"]))
    return users


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the ")" closing the command name: field 3 (state) is index 0, so utime (14) is index 11.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples ``pid``'s RSS every ``interval`` seconds in a thread while in the ``with`` block, and
    notes the CPU time the process used meanwhile (``cpu_seconds``)."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.start_rss = 0
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = rss_bytes(self.pid)
            except (OSError, BenchError):
                return  # the process is gone
            self.samples += 1
            self.peak = max(self.peak, value)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.start_rss = self.peak = rss_bytes(self.pid)
        self._cpu_start = process_cpu_seconds(self.pid)
        self.cpu_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.cpu_seconds = process_cpu_seconds(self.pid) - self._cpu_start

    @property
    def growth(self) -> int:
        return max(self.peak - self.start_rss, 0)


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {
        "count": len(ms),
        "mean": round(sum(ms) / len(ms), 3) if ms else float("nan"),
        "p50": round(percentile(ms, 50), 3),
        "p95": round(percentile(ms, 95), 3),
        "p99": round(percentile(ms, 99), 3),
        "max": round(max(ms), 3) if ms else float("nan"),
    }


@dataclass
class Metric:
    """One reported number. ``target`` reads like '<= 25' or '>= 200'; timing targets are reported,
    never enforced. ``check`` marks a correctness result (True/False), which does fail the run."""

    name: str
    value: float | int | str | None
    unit: str = ""
    target: str | None = None
    check: bool | None = None

    @property
    def meets_target(self) -> bool | None:
        if self.target is None or not isinstance(self.value, int | float):
            return None
        op, _, limit = self.target.partition(" ")
        bound = float(limit)
        return self.value <= bound if op == "<=" else self.value >= bound

    @property
    def status(self) -> str:
        if self.check is not None:
            return "ok" if self.check else "FAILED"
        met = self.meets_target
        if met is None:
            return ""
        return "ok" if met else "MISSED"


@dataclass
class ScenarioResult:
    scenario: str
    db: str
    quick: bool
    metrics: list[Metric]
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed_checks(self) -> list[Metric]:
        return [m for m in self.metrics if m.check is False]

    def to_json(self) -> dict[str, Any]:
        return {
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": self.quick,
            "seconds": round(self.seconds, 1),
            "metrics": {
                m.name: {
                    "value": m.value,
                    "unit": m.unit,
                    **({"target": m.target, "meets_target": m.meets_target} if m.target else {}),
                    **({"check": m.check} if m.check is not None else {}),
                }
                for m in self.metrics
            },
            "details": self.details,
        }


def fmt_value(value: float | int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_table(results: Sequence[ScenarioResult]) -> str:
    rows = [("scenario", "db", "metric", "value", "target", "")]
    for result in results:
        for m in result.metrics:
            value = fmt_value(m.value) + (f" {m.unit}" if m.unit else "")
            target = f"{m.target} {m.unit}".strip() if m.target else ""
            rows.append((result.scenario, result.db, m.name, value, target, m.status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def cpu_busy_seconds() -> float:
    """Busy CPU time of the whole machine so far (all cores, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class ForeignLoad:
    """How much CPU the rest of the machine used while a scenario ran: machine busy time minus this
    process and its finished children (server, CLI, receiver). PostgreSQL's backends count as
    foreign too. A large figure means another job shared the two cores and the numbers are noisy."""

    def __enter__(self) -> ForeignLoad:
        self._busy = cpu_busy_seconds()
        self._own = self._own_seconds()
        self._wall = time.monotonic()
        self.foreign_cpu_seconds = 0.0
        self.wall_seconds = 0.0
        return self

    @staticmethod
    def _own_seconds() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __exit__(self, *exc: object) -> None:
        self.wall_seconds = time.monotonic() - self._wall
        busy = cpu_busy_seconds() - self._busy
        own = self._own_seconds() - self._own
        self.foreign_cpu_seconds = max(busy - own, 0.0)

    @property
    def foreign_cores(self) -> float:
        return self.foreign_cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


def machine_facts() -> dict[str, Any]:
    cpu_model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = f"{int(line.split()[1]) // 1024} MiB"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory": mem_total,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def save_results(results: Sequence[ScenarioResult], path: Path = RESULTS_FILE) -> None:
    """Merge into ``path``: each (scenario, db) entry is replaced, the others are kept."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
    if not isinstance(data.get("scenarios"), dict):
        data["scenarios"] = {}
    data["machine"] = machine_facts()
    data["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    for result in results:
        data["scenarios"].setdefault(result.scenario, {})[result.db] = result.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
