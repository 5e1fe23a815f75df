"""``claimdesk import FILE``: claims from a CSV or NDJSON file, in batches, safe to run twice.

Each row becomes a ``ClaimCreate`` (so it is checked exactly as the API would check it) and is
created through ``claims.service.create_claim`` (audit event, outbox event, duplicate marking).
Every imported row leaves a ``ClaimImport`` record under a stable key: ``ext:<external_id>`` when
the row has one, else ``row:<sha256 of the validated claim>``. A row whose key is already recorded
is skipped, so running the same file again creates nothing. Each batch is one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from app.auth.models import User
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims.schemas import ClaimCreate
from app.config import Settings
from app.db import Database
from app.errors import DomainError
from app.intake.models import ClaimImport

FIELDS = (
    "text",
    "claimant",
    "appearance_url",
    "appeared_at",
    "outlet",
    "context",
    "language",
    "tags",
    "priority",
    "due_at",
    "public",
    "external_id",
    "figure",
)
FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
DEFAULT_BATCH = 200
MAX_EXTERNAL_ID = 150
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


class ImportFailed(Exception):
    """Something that stops the whole import before any row is read (exit status 2)."""


@dataclass
class Row:
    line: int
    values: dict[str, Any]
    error: str | None = None  # the row could not even be read as a row


@dataclass
class Report:
    imported: int = 0
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if self.rejected else 0


# --- reading ---------------------------------------------------------------------------------


class _Counted:
    """Decoded lines of a binary file, counting the bytes read (for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes_read = 0
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        for chunk in self.raw:
            self.bytes_read += len(chunk)
            self.line += 1
            text = chunk.decode("utf-8")  # UnicodeDecodeError is reported with the line number
            if self.line == 1:
                text = text.removeprefix("\ufeff")
            yield text


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """``["Quote=text", "Speaker=claimant"]`` -> {"quote": "text", "speaker": "claimant"}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        target = target.strip().lower()
        if not sep or not column.strip() or target not in FIELDS:
            raise ImportFailed(f"--map {pair!r}: expected COLUMN=FIELD with FIELD one of {', '.join(FIELDS)}")
        mapping[column.strip().lower()] = target
    return mapping


def _field_for(name: str, mapping: dict[str, str]) -> str | None:
    key = name.strip().lower()
    if key in mapping:
        return mapping[key]
    return key if key in FIELDS else None


def _read_csv(source: _Counted, mapping: dict[str, str], report: Report) -> Iterator[Row]:
    reader = csv.reader(source)
    try:
        header = next(reader)
    except StopIteration:
        return
    targets = [_field_for(h, mapping) for h in header]
    report.ignored_columns = [h for h, t in zip(header, targets, strict=True) if t is None and h.strip()]
    if "text" not in targets:
        raise ImportFailed(
            f"no column maps to `text` (columns: {', '.join(header)}); name one `text` or use --map COLUMN=text"
        )
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFailed(f"line {start}: not valid CSV ({exc})") from exc
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            yield Row(start, {}, f"{len(cells)} cells but {len(header)} columns")
            continue
        values = {t: c for t, c in zip(targets, cells, strict=False) if t is not None}
        yield Row(start, values)


def _read_ndjson(source: _Counted, mapping: dict[str, str], report: Report) -> Iterator[Row]:
    ignored: dict[str, None] = {}
    for text in source:
        line = source.line
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            yield Row(line, {}, f"not valid JSON ({exc})")
            continue
        if not isinstance(obj, dict):
            yield Row(line, {}, "each line must be a JSON object")
            continue
        values = {}
        for key, value in obj.items():
            target = _field_for(str(key), mapping)
            if target is None:
                ignored.setdefault(str(key), None)
            else:
                values[target] = value
        report.ignored_columns = list(ignored)
        yield Row(line, values)


# --- rows to claims --------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def to_claim(values: dict[str, Any]) -> tuple[ClaimCreate, str | None]:
    """The row as a ClaimCreate and its external id. Raises ValueError with a readable reason."""
    raw = {k: v for k, v in values.items() if not _blank(v)}
    external = raw.pop("external_id", None)
    if external is not None:
        external = str(external).strip()
    if isinstance(raw.get("tags"), str):
        raw["tags"] = [t.strip() for t in re.split(r"[,;]", raw["tags"]) if t.strip()]
    if isinstance(raw.get("public"), str):
        flag = raw["public"].strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError(f"public: {raw['public']!r} is not true or false")
        raw["public"] = flag in _TRUE
    if isinstance(raw.get("priority"), str):
        raw["priority"] = raw["priority"].strip().lower()
    if isinstance(raw.get("figure"), str):
        try:
            raw["figure"] = json.loads(raw["figure"])
        except ValueError as exc:
            raise ValueError("figure: not a JSON object") from exc
    try:
        claim = ClaimCreate.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in first[:3])
        raise ValueError(reasons) from exc
    for name in ("appeared_at", "due_at"):
        # A spreadsheet's dates rarely carry a zone; the desk works in UTC.
        setattr(claim, name, _utc(getattr(claim, name)))
    return claim, external


def row_key(claim: ClaimCreate, external_id: str | None) -> str:
    if external_id:
        if len(external_id) <= MAX_EXTERNAL_ID:
            return f"ext:{external_id}"
        return "ext#" + hashlib.sha256(external_id.encode()).hexdigest()
    canonical = json.dumps(claim.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "row:" + hashlib.sha256(canonical.encode()).hexdigest()


# --- the progress bar ------------------------------------------------------------------------


class Progress:
    """``[#####-----]  52%  1,204 rows`` on stderr. Redrawn in place on a terminal (at most ten
    times a second); elsewhere (a log file, a pipe) one line per tenth of the way."""

    WIDTH = 30

    def __init__(self, total_bytes: int, stream: IO[str] | None = None) -> None:
        self.total = max(total_bytes, 1)
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_tenth = -1

    def update(self, done_bytes: int, rows: int, *, final: bool = False) -> None:
        share = min(1.0, done_bytes / self.total)
        if self.tty:
            now = time.monotonic()
            if not final and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            self.stream.write("\r" + self._bar(share, rows) + ("\n" if final else ""))
        else:
            tenth = int(share * 10)
            if tenth == self._last_tenth and not final:
                return
            if final and tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(self._bar(share, rows) + "\n")
        self.stream.flush()

    def _bar(self, share: float, rows: int) -> str:
        filled = int(share * self.WIDTH)
        return f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {share * 100:3.0f}%  {rows:,} rows"


# --- running ---------------------------------------------------------------------------------


def resolve_user(session: Session, email: str | None) -> Principal:
    """The user the claims are created as: ``email``, or the first active admin."""
    if email:
        user = session.execute(sa.select(User).where(col(User.email) == email.strip().lower())).scalar_one_or_none()
        if user is None or not user.active:
            raise ImportFailed(f"no active user {email}")
    else:
        user = (
            session.execute(
                sa.select(User)
                .where(col(User.role) == Role.admin.value, col(User.active).is_(True))
                .order_by(col(User.id))
            )
            .scalars()
            .first()
        )
        if user is None:
            raise ImportFailed("no active admin to import as; create one or pass --as EMAIL")
    role = Role(user.role)
    if not role.admits(Role.contributor):
        raise ImportFailed(f"{user.email} is a {role.value}; importing claims needs contributor or above")
    assert user.id is not None
    return Principal(user_id=user.id, role=role, email=user.email, name=user.name, api_key_id=None)


def detect_format(path: Path, forced: str | None) -> str:
    if forced:
        return forced
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImportFailed(f"cannot tell the format of {path.name} from its extension; pass --format csv or ndjson")
    return fmt


def _flush_batch(
    database: Database,
    batch: list[tuple[Row, ClaimCreate, str]],
    *,
    principal: Principal,
    settings: Settings,
    source: str,
    report: Report,
) -> None:
    """One transaction per batch; a row whose key is already recorded is skipped."""
    if not batch:
        return
    with database.transaction() as session:
        keys = [key for _, _, key in batch]
        known = set(session.execute(sa.select(col(ClaimImport.key)).where(col(ClaimImport.key).in_(keys))).scalars())
        for row, claim_in, key in batch:
            if key in known:
                report.skipped += 1
                continue
            try:
                with session.begin_nested():
                    claim = claims_service.create_claim(session, principal=principal, data=claim_in, settings=settings)
                    assert claim.id is not None
                    session.add(
                        ClaimImport(
                            key=key,
                            claim_id=claim.id,
                            source=source[:300],
                            line=row.line,
                            imported_by=principal.user_id,
                        )
                    )
                    session.flush()
            except IntegrityError:
                report.skipped += 1  # another import recorded the same key meanwhile
                continue
            except DomainError as exc:
                report.rejected.append((row.line, exc.detail))
                continue
            known.add(key)
            report.imported += 1


def run_import(
    database: Database,
    settings: Settings,
    path: Path,
    *,
    fmt: str | None = None,
    mapping: Sequence[str] = (),
    as_email: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: IO[str] | None = None,
) -> Report:
    """Import ``path``; raises ImportFailed for problems that stop everything."""
    kind = detect_format(path, fmt)
    columns = parse_mapping(mapping)
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    with database.read_session() as session:
        principal = resolve_user(session, as_email)
    report = Report()
    bar = Progress(os.path.getsize(path), progress)
    batch: list[tuple[Row, ClaimCreate, str]] = []
    in_file: set[str] = set()
    rows = 0
    with path.open("rb") as raw:
        source = _Counted(raw)
        reader = _read_csv(source, columns, report) if kind == "csv" else _read_ndjson(source, columns, report)
        try:
            for row in reader:
                rows += 1
                if row.error:
                    report.rejected.append((row.line, row.error))
                else:
                    try:
                        claim_in, external = to_claim(row.values)
                    except ValueError as exc:
                        report.rejected.append((row.line, str(exc)))
                    else:
                        key = row_key(claim_in, external)
                        if key in in_file:
                            report.skipped += 1  # the same row earlier in this file
                        else:
                            in_file.add(key)
                            batch.append((row, claim_in, key))
                if len(batch) >= batch_size:
                    _flush_batch(
                        database, batch, principal=principal, settings=settings, source=path.name, report=report
                    )
                    batch = []
                bar.update(source.bytes_read, rows)
        except UnicodeDecodeError as exc:
            raise ImportFailed(f"line {source.line}: not UTF-8 text ({exc.reason})") from exc
        _flush_batch(database, batch, principal=principal, settings=settings, source=path.name, report=report)
    bar.update(source.bytes_read, rows, final=True)
    return report


def main(args: Any, *, database: Database, settings: Settings, out: IO[str], err: IO[str]) -> int:
    """The CLI verb: prints rejected rows and a summary; 0 if nothing was rejected, 1 otherwise, 2 if
    the import could not start."""
    try:
        report = run_import(
            database,
            settings,
            Path(args.file),
            fmt=args.format,
            mapping=args.map or (),
            as_email=args.as_email,
            batch_size=args.batch_size,
            progress=err,
        )
    except ImportFailed as exc:
        print(f"error: {exc}", file=err)
        return 2
    if report.ignored_columns:
        print(f"ignored columns: {', '.join(report.ignored_columns)}", file=err)
    for line, reason in report.rejected:
        print(f"line {line}: rejected: {reason}", file=err)
    print(
        f"imported {report.imported}, skipped {report.skipped} (already imported), rejected {len(report.rejected)}",
        file=out,
    )
    if report.imported == 0 and report.skipped:
        print(f"nothing new: {report.skipped} rows were imported before", file=out)
    return report.exit_status
