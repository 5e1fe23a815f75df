"""How columns come back from the database: UTC datetimes and JSON values on both engines, and one
claim presented the same whether it was read as an ORM entity or as a plain row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.claims import service
from app.claims.models import Claim
from app.config import Settings
from app.db import Database, load_json
from tests.conftest import Desk
from tests.helpers import Journey

_CLAIMS: sa.Table = Claim.__table__  # type: ignore[attr-defined]


@pytest.fixture
def j(client: TestClient, desk: Desk) -> Journey:
    return Journey(client, desk)


def _row(database: Database, claim_id: int) -> sa.Row[Any]:
    with database.read_session() as session:
        return service.claim_row(session, claim_id)


def test_datetimes_come_back_aware_in_utc_whatever_zone_they_were_written_in(j: Journey, database: Database) -> None:
    cid = j.create(due_at="2031-03-04T12:30:15.250000+02:00")["id"]
    row = _row(database, cid)
    assert row.due_at == datetime(2031, 3, 4, 10, 30, 15, 250000, tzinfo=UTC)
    assert row.due_at.tzinfo is UTC
    assert row.created_at.tzinfo is UTC and row.appeared_at is None
    shown = datetime.fromisoformat(j.get(cid)["due_at"].replace("Z", "+00:00"))
    assert shown == row.due_at and shown.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2031-03-04 10:30:15.250000", datetime(2031, 3, 4, 10, 30, 15, 250000, tzinfo=UTC)),
        ("2031-03-04 10:30:15", datetime(2031, 3, 4, 10, 30, 15, tzinfo=UTC)),
        ("2031-03-04T10:30:15.5", datetime(2031, 3, 4, 10, 30, 15, 500000, tzinfo=UTC)),
        ("2031-03-04 12:30:15+02:00", datetime(2031, 3, 4, 10, 30, 15, tzinfo=UTC)),
        ("2031-03-04", datetime(2031, 3, 4, tzinfo=UTC)),
    ],
)
def test_sqlite_text_in_any_iso_form_reads_as_utc(
    j: Journey, database: Database, stored: str, expected: datetime
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("text datetimes are SQLite's storage")
    cid = j.create()["id"]
    with database.write_engine.begin() as conn:
        # Written as text by hand, as a bulk load or an older version might have.
        conn.execute(sa.text("UPDATE claims SET due_at = :v WHERE id = :id"), {"v": stored, "id": cid})
    got = _row(database, cid).due_at
    assert got == expected and got.utcoffset() == timedelta(0)


def test_json_columns_round_trip_and_each_read_gets_its_own_objects(j: Journey, database: Database) -> None:
    figure = {"low": 40, "qualifier": "at least", "counted": "people killed"}
    cid = j.create(tags=["flood", "north"], figure=figure)["id"]
    bare = j.create()["id"]
    first, second = _row(database, cid), _row(database, cid)
    assert first.tags == ["flood", "north"] and first.figure["low"] == 40
    first.tags.append("changed")
    assert second.tags == ["flood", "north"]
    empty_a, empty_b = _row(database, bare), _row(database, bare)
    assert empty_a.tags == [] and empty_a.figure is None and empty_a.source is None
    empty_a.tags.append("x")
    assert empty_b.tags == []


def test_load_json_parses_everything_else_and_returns_fresh_empties() -> None:
    assert load_json("null") is None
    a, b = load_json("[]"), load_json("[]")
    assert a == [] and a is not b
    c, d = load_json("{}"), load_json("{}")
    assert c == {} and c is not d
    assert load_json('{"a": [1, 2.5, "x", null]}') == {"a": [1, 2.5, "x", None]}
    assert load_json(b'["bytes"]') == ["bytes"]
    assert load_json(b"null") is None and load_json(b"[]") == [] and load_json(b"{}") == {}
    assert load_json("1") == 1 and load_json(b"true") is True
    assert load_json(" null ") is None  # not the fast path, still JSON


def test_present_gives_the_same_answer_for_an_entity_and_a_row(
    j: Journey, database: Database, settings: Settings
) -> None:
    cid = j.to_state("in_review")
    with database.read_session() as session:
        entity = session.get(Claim, cid)
        assert entity is not None
        row = service.claim_row(session, cid)
        for who in (j.editor, j.editor2, j.checker, j.viewer):
            from_entity = service.present(session, [entity], principal=who.principal, settings=settings)[0]
            from_row = service.present(session, [row], principal=who.principal, settings=settings)[0]
            assert from_entity == from_row
        # An editor who approved this round may not approve again; the answer is not shared between
        # callers with the same role.
        editor = j.editor.principal
        assert "approve" in service.allowed_actions_for(row, editor)
        assert "approve" not in service.allowed_actions_for(row, editor, [editor.user_id])
        assert "approve" in service.allowed_actions_for(row, j.editor2.principal, [editor.user_id])
    assert "approve" in j.get(cid, j.editor)["allowed_actions"]
    assert j.get(cid, j.viewer)["allowed_actions"] == []
    shown = j.get(cid)
    assert shown["state"] == "in_review" and shown["verdict"]["rating"] == "false"
    assert shown["verdict"]["author_id"] == j.checker.id and shown["assignee_id"] == j.checker.id


def test_a_page_lists_each_claim_as_it_reads_alone(j: Journey) -> None:
    ids = [j.to_state("in_review"), j.to_state("queued"), j.create(tags=["a"])["id"]]
    page = j.client.get("/api/v1/claims?limit=10", headers=j.editor.headers).json()["items"]
    by_id = {c["id"]: c for c in page}
    for cid in ids:
        assert by_id[cid] == j.get(cid, j.editor)


def test_overdue_is_computed_from_the_due_date_and_the_state(j: Journey, database: Database) -> None:
    cid = j.create(due_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())["id"]
    assert j.get(cid)["overdue"] is False
    past = datetime.now(timezone(timedelta(hours=-5))) - timedelta(hours=1)
    with database.write_engine.begin() as conn:
        conn.execute(_CLAIMS.update().where(_CLAIMS.c.id == cid).values(due_at=past.astimezone(UTC)))
    assert j.get(cid)["overdue"] is True


def test_new_claims_store_json_nulls_the_way_the_orm_does(j: Journey, database: Database) -> None:
    cid = j.create()["id"]
    with database.read_engine.connect() as conn:
        # IS NULL is true only for SQL NULL; every JSON column of a new claim holds the JSON null.
        row = conn.execute(
            sa.text(
                "SELECT figure IS NULL, source IS NULL, verdict_findings IS NULL, published_verdict IS NULL "
                "FROM claims WHERE id = :id"
            ),
            {"id": cid},
        ).one()
    assert [bool(v) for v in row] == [False, False, False, False]


def test_an_empty_figure_or_source_reads_as_none(j: Journey, database: Database) -> None:
    cid = j.create()["id"]
    with database.write_engine.begin() as conn:
        conn.execute(_CLAIMS.update().where(_CLAIMS.c.id == cid).values(figure={}, source={}))
    shown = j.get(cid)
    assert shown["figure"] is None and shown["source"] is None
