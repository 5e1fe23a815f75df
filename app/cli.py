"""The `claimdesk` command."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from app.config import get_settings
from app.db import Database, make_database


def _database() -> Database:
    return make_database(get_settings())


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    database = _database()
    upgrade(database.write_engine)
    database.dispose()
    print("migrations at head")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from app.worker import IN_PROCESS_ENV

    cmd_migrate(args)
    settings = get_settings()
    if args.no_worker or args.workers > 1:
        # The factory below runs in each server process and reads this to leave the worker out.
        os.environ[IN_PROCESS_ENV] = "0"
        if args.workers > 1:
            print("several server processes: run `claimdesk worker` separately to deliver webhooks")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
        # Behind a reverse proxy, trust its X-Forwarded-For/-Proto only from the addresses named in
        # CLAIMDESK_FORWARDED_ALLOW_IPS, so sign-in throttling and logs see each person's address.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.observability import configure_logging
    from app.worker import run_forever

    settings = get_settings()
    configure_logging(settings.log_level, as_json=settings.log_json)
    database = make_database(settings)
    try:
        return run_forever(database, settings)
    finally:
        database.dispose()


def cmd_user_create(args: argparse.Namespace) -> int:
    from app.audit.service import Actor
    from app.auth import service as auth_service
    from app.auth.roles import Role

    password = None
    if args.password:
        password = (
            getpass.getpass("Password (10+ characters): ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        )
        if len(password) < 10:
            print("error: the password needs at least 10 characters", file=sys.stderr)
            return 2
    database = _database()
    try:
        with database.transaction() as session:
            user = auth_service.create_user(
                session,
                actor=Actor.system(),
                email=args.email,
                name=args.name,
                role=Role(args.role),
                password=password,
            )
            assert user.id is not None
            _, key = auth_service.create_api_key(session, actor=Actor.system(), user_id=user.id, name="cli")
    except Exception as exc:
        from app.errors import DomainError

        if isinstance(exc, DomainError):
            print(f"error: {exc.detail}", file=sys.stderr)
            return 1
        raise
    finally:
        database.dispose()
    print(f"created {args.role} {args.email} (user id {user.id}); API key:")
    print(key)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import load_demo

    database = _database()
    try:
        load_demo(database, get_settings(), out=sys.stdout)
    finally:
        database.dispose()
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from app.audit.service import verify_chains

    database = _database()
    try:
        with database.read_session() as session:
            checked, problems = verify_chains(session)
    finally:
        database.dispose()
    for p in problems:
        print(f"BROKEN {p.subject} seq {p.seq}: {p.problem}")
    print(f"{checked} events checked, {len(problems)} problems")
    return 1 if problems else 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from app.evidence.storage import make_blob_store
    from app.evidence.verify import verify_store

    settings = get_settings()
    database = _database()
    try:
        report = verify_store(database, make_blob_store(settings))
    finally:
        database.dispose()
    for sha in report.missing:
        print(f"MISSING   {sha}")
    for sha in report.corrupted:
        print(f"CORRUPTED {sha}")
    for sha in report.purged_leftovers_removed:
        print(f"removed bytes of purged evidence {sha}")
    if report.unreferenced:
        print(f"{len(report.unreferenced)} stored files belong to no evidence (an upload interrupted before its row)")
    print(
        f"{report.checked} files checked ({report.bytes_read} bytes), {len(report.missing)} missing, "
        f"{len(report.corrupted)} corrupted"
    )
    return 0 if report.ok else 1


def cmd_import(args: argparse.Namespace) -> int:
    from app.intake import importer

    settings = get_settings()
    database = make_database(settings)
    try:
        return importer.main(args, database=database, settings=settings, out=sys.stdout, err=sys.stderr)
    finally:
        database.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claimdesk", description="Claimdesk fact-verification desk.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run migrations, then the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-worker", action="store_true", help="do not run the webhook/timer worker in this process")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser(
        "worker", help="run the webhook delivery and timer worker alone (until SIGTERM/SIGINT)"
    ).set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(func=cmd_migrate)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create = user.add_parser("create", help="create a user and print a new API key on the last line")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["admin", "editor", "checker", "contributor", "viewer"])
    create.add_argument("--password", action="store_true", help="also set a password (read from the terminal or stdin)")
    create.set_defaults(func=cmd_user_create)

    demo = sub.add_parser("demo", help="load the demo desk (once) and print how to sign in")
    demo.add_argument("--once", action="store_true", help="(the default) do nothing but mint a key if loaded")
    demo.set_defaults(func=cmd_demo)

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="check every hash chain; exit 1 if broken").set_defaults(func=cmd_audit_verify)
    evidence = sub.add_parser("evidence", help="evidence files").add_subparsers(dest="evidence_command", required=True)
    evidence.add_parser("verify", help="re-hash every stored file; exit 1 if any is missing or corrupted").set_defaults(
        func=cmd_evidence_verify
    )

    imp = sub.add_parser("import", help="import claims from a CSV or NDJSON file (safe to run twice)")
    imp.add_argument("file", help="a .csv, .ndjson or .jsonl file")
    imp.add_argument("--format", choices=["csv", "ndjson"], help="override the format the extension suggests")
    imp.add_argument(
        "--map", action="append", metavar="COLUMN=FIELD", help="read COLUMN as the claim field FIELD (repeatable)"
    )
    imp.add_argument(
        "--as", dest="as_email", metavar="EMAIL", help="create the claims as this user (default: the first admin)"
    )
    imp.add_argument("--batch-size", type=int, default=200, help="rows per transaction (default 200)")
    imp.set_defaults(func=cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        # A bad CLAIMDESK_* value: say which and why in a line each, not a traceback.
        for err in exc.errors():
            name = "CLAIMDESK_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"error: {name}: {err['msg']}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
