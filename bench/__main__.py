"""`python -m bench [SCENARIO ...] [--db sqlite|postgresql|both] [--quick]`

Runs each chosen scenario once per database against a fresh installation (own temp folder, own
database, own `claimdesk serve` on a free loopback port), prints a table and merges the numbers into
bench/results/latest.json. Timing targets are reported, never enforced; the exit status is 1 only
when a run errors or a correctness check fails (a hash mismatch, a double hand-out, a lost webhook).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from bench import claims_api, evidence_io, floor, list_1m, queue_next, webhooks
from bench.harness import (
    POSTGRES_ENV,
    RESULTS_FILE,
    Desk,
    ForeignLoad,
    Metric,
    ScenarioResult,
    fresh_database,
    log,
    machine_facts,
    postgres_admin_url,
    render_table,
    save_results,
)

SCENARIOS: dict[str, ModuleType] = {m.NAME: m for m in (claims_api, list_1m, evidence_io, queue_next, webhooks)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Claimdesk benchmarks: " + "; ".join(f"{n} ({m.DESCRIPTION})" for n, m in SCENARIOS.items()),
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql", "both"],
        default="both",
        help=f"both = SQLite, plus PostgreSQL when {POSTGRES_ENV[0]} (or {POSTGRES_ENV[1]}) is set",
    )
    parser.add_argument("--quick", action="store_true", help="a smaller smoke run (minutes -> seconds)")
    parser.add_argument("--no-floor", action="store_true", help="skip timing the bare FastAPI floor first")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="the JSON file to merge results into")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def databases(choice: str) -> list[str]:
    have_postgres = postgres_admin_url() is not None
    if choice == "postgresql" and not have_postgres:
        raise SystemExit(f"--db postgresql needs {POSTGRES_ENV[0]} (e.g. postgresql+psycopg://user:pw@127.0.0.1/db)")
    if choice == "both":
        if not have_postgres:
            log(f"PostgreSQL skipped: {POSTGRES_ENV[0]} is not set")
        return ["sqlite", "postgresql"] if have_postgres else ["sqlite"]
    return [choice]


def run_one(module: ModuleType, db: str, quick: bool, floor_p50_ms: float | None) -> ScenarioResult:
    workdir = Path(tempfile.mkdtemp(prefix=f"claimdesk-bench-{module.NAME}-{db}-"))
    started = time.perf_counter()
    log(f"{module.NAME} on {db}{' (quick)' if quick else ''}: {workdir}")
    try:
        with ForeignLoad() as load, fresh_database(db, workdir) as url:
            desk = Desk(db, url, workdir, floor_p50_ms=floor_p50_ms)
            try:
                metrics, details = module.run(desk, quick=quick)
            finally:
                desk.stop()
        details["foreign_cpu_cores"] = round(load.foreign_cores, 2)
        metrics.append(Metric("other load on the machine meanwhile", round(load.foreign_cores, 2), "cores"))
        if db == "postgresql":
            metrics[-1].name += " (incl. PostgreSQL)"
        return ScenarioResult(module.NAME, db, quick, metrics, details, time.perf_counter() - started)
    except Exception as exc:
        traceback.print_exc()
        tail = ""
        server_log = workdir / "server.log"
        if server_log.exists():
            tail = "\n".join(server_log.read_text(errors="replace").splitlines()[-30:])
            print(f"--- server log tail ---\n{tail}", file=sys.stderr)
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return ScenarioResult(
            module.NAME,
            db,
            quick,
            [Metric("run", f"error: {error}", check=False)],
            {"server_log_tail": tail},
            time.perf_counter() - started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    dbs = databases(args.db)
    results: list[ScenarioResult] = []
    floor_p50_ms = None
    if not args.no_floor:
        try:
            measured = floor.measure()
        except Exception as exc:
            log(f"floor not measured: {exc}")
        else:
            results.append(measured)
            save_results([measured], args.results)
            floor_p50_ms = measured.details["routes"]["/def"]["p50_ms"]
    for name in names:
        for db in dbs:
            result = run_one(SCENARIOS[name], db, args.quick, floor_p50_ms)
            results.append(result)
            save_results([result], args.results)
            log(f"{name} on {db}: {result.seconds:.0f} s")
    facts = machine_facts()
    print()
    print(render_table(results))
    print()
    print(f"machine: {facts['nproc']} CPUs, {facts['cpu_model']}, {facts['memory']}, Python {facts['python']}")
    print(f"results merged into {args.results}")
    failed = [r for r in results if r.failed_checks]
    if failed:
        print("FAILED: " + ", ".join(f"{r.scenario}/{r.db}" for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
