"""`claimdesk import FILE`: CSV and NDJSON, rejected rows reported by line, a second run creates
nothing. The command runs as a real subprocess against a file migrated by `claimdesk migrate`, and
against each test database; the details run in process."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.db import Database, make_database
from app.intake import importer
from tests.conftest import Desk, make_settings

CSV = """external_id,text,claimant,appearance_url,appeared_at,tags,priority,public,Desk notes
lv-1,At least 40 people were killed in the Lower Vale floods,the regional governor,https://courier.example/a,2026-03-04,flood;casualties,high,yes,call back
lv-2,"Up to 9,000 homes were flooded, Aidline said",Aidline,,2026-03-04T10:00:00Z,"flood, homes",,no,
lv-3,A row the desk cannot take,someone,,,,asap,,
lv-4,"The Tarn dam was built in 1987,
its operator said",the dam operator,,,,low,,
lv-5,,nobody said anything,,,,,,
"""  # noqa: E501
# lv-3 (line 4) has a bad priority; lv-4 spans lines 5-6; lv-5 (line 7) has no text.

NDJSON = "\n".join(
    [
        json.dumps({"quote": "Turnout reached 61 percent in Harbourside", "speaker": "the election commission"}),
        "{not json",
        json.dumps(["a", "list"]),
        "",
        json.dumps({"quote": "Prices rose 4.2 percent in March", "tags": ["economy"], "external_id": 7}),
        json.dumps({"quote": "Turnout reached 61 percent in Harbourside", "speaker": "the election commission"}),
    ]
)
# line 2 is not JSON, line 3 not an object, line 6 repeats line 1.


def _cli(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLAIMDESK_DATABASE_URL": url, "CLAIMDESK_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _rows(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_import_command_on_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    assert _cli(url, tmp_path, "migrate").returncode == 0
    setup = make_database(make_settings(url, tmp_path))
    Desk(setup).person("admin")
    setup.dispose()
    (tmp_path / "claims.csv").write_text(CSV, encoding="utf-8")

    first = _cli(url, tmp_path, "import", "claims.csv")
    assert first.returncode == 1, first.stderr
    assert "imported 3, skipped 0 (already imported), rejected 2" in first.stdout
    assert "line 4: rejected: priority:" in first.stderr
    assert "line 7: rejected: text:" in first.stderr
    assert "ignored columns: Desk notes" in first.stderr
    assert "[##############################] 100%" in first.stderr  # the progress bar, finished

    second = _cli(url, tmp_path, "import", "claims.csv")
    assert second.returncode == 1  # the bad rows are still bad
    assert "imported 0, skipped 3 (already imported), rejected 2" in second.stdout
    assert "nothing new" in second.stdout

    claims = _rows(
        url, "SELECT text, claimant, tags, priority, public, appeared_at, created_by FROM claims ORDER BY id"
    )
    assert [c[0] for c in claims] == [
        "At least 40 people were killed in the Lower Vale floods",
        "Up to 9,000 homes were flooded, Aidline said",
        "The Tarn dam was built in 1987,\nits operator said",
    ]
    assert json.loads(claims[0][2]) == ["flood", "casualties"] and json.loads(claims[1][2]) == ["flood", "homes"]
    assert [(c[3], bool(c[4])) for c in claims] == [("high", True), ("normal", False), ("low", False)]
    assert str(claims[0][5]).startswith("2026-03-04 00:00:00")  # a bare date, taken as UTC midnight
    assert _rows(url, "SELECT key, line FROM claim_imports ORDER BY id") == [
        ("ext:lv-1", 2),
        ("ext:lv-2", 3),
        ("ext:lv-4", 5),
    ]
    assert _rows(url, "SELECT count(*) FROM audit_events WHERE type = 'claim.created'") == [(3,)]

    # NDJSON, its columns mapped, the format forced on an unhelpful extension.
    (tmp_path / "more.txt").write_text(NDJSON, encoding="utf-8")
    args = ("import", "more.txt", "--format", "ndjson", "--map", "quote=text", "--map", "Speaker=claimant")
    third = _cli(url, tmp_path, *args)
    assert third.returncode == 1
    assert "imported 2, skipped 1 (already imported), rejected 2" in third.stdout
    assert "line 2: rejected: not valid JSON" in third.stderr
    assert "line 3: rejected: each line must be a JSON object" in third.stderr
    assert _cli(url, tmp_path, *args).stdout.startswith("imported 0, skipped 3")
    assert _rows(url, "SELECT claimant FROM claims WHERE text LIKE 'Turnout%'") == [("the election commission",)]
    assert _rows(url, "SELECT count(*) FROM claims") == [(5,)]


@pytest.mark.slow
def test_import_command_on_each_database(database: Database, desk, settings, tmp_path: Path) -> None:
    editor = desk.person("editor")
    good = CSV.splitlines()[0] + "\n" + "\n".join(CSV.splitlines()[1:3]) + "\n"
    (tmp_path / "good.csv").write_text(good, encoding="utf-8")
    first = _cli(settings.database_url, tmp_path, "import", "good.csv", "--as", editor.principal.email)
    assert first.returncode == 0, first.stderr
    assert "imported 2, skipped 0" in first.stdout
    again = _cli(settings.database_url, tmp_path, "import", "good.csv", "--as", editor.principal.email)
    assert again.returncode == 0 and "nothing new: 2 rows were imported before" in again.stdout
    with database.read_session() as s:
        made = s.execute(sa.text("SELECT created_by FROM claims")).scalars().all()
    assert made == [editor.id, editor.id]


# --- in process ------------------------------------------------------------------------------


def _run(database: Database, settings, path: Path, **kw: Any) -> tuple[int, str, str]:
    args = argparse.Namespace(file=str(path), format=None, map=None, as_email=None, batch_size=2)
    for key, value in kw.items():
        setattr(args, key, value)
    out, err = io.StringIO(), io.StringIO()
    status = importer.main(args, database=database, settings=settings, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_batches_duplicates_and_marks(database: Database, desk, settings, tmp_path: Path) -> None:
    admin = desk.person("admin")
    rows = [
        {"text": f"Officials said {n} people were evacuated from Harbourside", "external_id": f"e{n}"}
        for n in (10, 20, 30)
    ]
    rows.append({"text": "Officials said 10 people were evacuated from Harbourside."})  # a near-duplicate of e10
    rows.append({"text": "Officials said 10 people were evacuated from Harbourside."})  # the same row again
    rows.append({"text": "Inflation was 4.2 percent", "figure": {"low": 4.2, "high": 4.2, "unit": "%"}})
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    status, out, _ = _run(database, settings, path)
    assert status == 0, out
    assert "imported 5, skipped 1" in out
    with database.read_session() as s:
        made = s.execute(sa.text("SELECT id, created_by FROM claims ORDER BY id")).all()
        figure = s.execute(sa.text("SELECT figure FROM claims WHERE text LIKE 'Inflation%'")).scalar_one()
        flagged = s.execute(
            sa.text("SELECT claim_id, data FROM audit_events WHERE type = 'claim.duplicate_suspected'")
        ).all()
    assert {c[1] for c in made} == {admin.id}  # the first active admin
    assert (json.loads(figure) if isinstance(figure, str) else figure)["low"] == 4.2
    flagged_ids = {row[0] for row in flagged}
    assert made[3][0] in flagged_ids  # the near-duplicate is marked, like any new claim


def test_what_stops_an_import(database: Database, desk, settings, tmp_path: Path) -> None:
    viewer = desk.person("viewer")
    path = tmp_path / "claims.csv"
    path.write_text("quote,speaker\nForty people died,the governor\n", encoding="utf-8")
    status, _, err = _run(database, settings, path)
    assert status == 2 and "no active admin" in err
    desk.person("admin")
    status, _, err = _run(database, settings, path)
    assert status == 2 and "no column maps to `text`" in err
    status, _, err = _run(database, settings, path, as_email=viewer.principal.email)
    assert status == 2 and "needs contributor" in err
    status, _, err = _run(database, settings, path, as_email="nobody@desk.test")
    assert status == 2 and "no active user" in err
    status, _, err = _run(database, settings, tmp_path / "missing.csv")
    assert status == 2 and "no such file" in err
    status, _, err = _run(database, settings, path.rename(tmp_path / "claims.txt"))
    assert status == 2 and "--format" in err
    path = tmp_path / "claims.txt"
    status, _, err = _run(database, settings, path, format="csv", map=["quote=txt"])
    assert status == 2 and "--map 'quote=txt'" in err
    status, out, _ = _run(database, settings, path, format="csv", map=["quote=text", "speaker=claimant"])
    assert status == 0 and "imported 1" in out
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text\nok\nCaf\xe9 owners said 12 people\n".encode("latin-1"))
    status, _, err = _run(database, settings, latin1)
    assert status == 2 and "line 3: not UTF-8" in err
    with database.read_session() as s:
        assert s.execute(sa.text("SELECT count(*) FROM claims")).scalar_one() == 1


def test_row_keys_are_stable() -> None:
    claim, external = importer.to_claim({"text": " Forty people died ", "tags": "a; b,c", "public": "No"})
    assert external is None and claim.tags == ["a", "b", "c"] and claim.public is False
    again, _ = importer.to_claim({"text": "Forty people died", "tags": ["a", "b", "c"], "public": False})
    assert importer.row_key(claim, None) == importer.row_key(again, None)
    assert importer.row_key(claim, "x-1") == "ext:x-1"
    assert importer.row_key(claim, "x" * 500).startswith("ext#")
    with pytest.raises(ValueError, match="public"):
        importer.to_claim({"text": "x", "public": "perhaps"})


def test_progress_bar_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = importer.Progress(1000, stream)
    bar.update(500, 10)
    bar.update(600, 12)  # within a tenth of a second: not redrawn
    bar.update(1000, 20, final=True)
    drawn = stream.getvalue()
    assert drawn.startswith("\r[###############---------------]  50%  10 rows")
    assert drawn.endswith("\r[##############################] 100%  20 rows\n")
    assert "12 rows" not in drawn
