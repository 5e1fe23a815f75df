"""Migrations are the only way the schema is made: up to head and back to base with rows present,
and autogenerate finds no drift — on both databases."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db import make_database
from app.migrate import current_revision, downgrade, head_revision, include_object, upgrade
from app.models import metadata
from tests.conftest import make_settings


@pytest.fixture
def fresh_url(request, tmp_path):
    """An empty database of each kind (not the migrated template)."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = request.getfixturevalue("pg_url")
    name = f"claimdesk_migrations_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    yield sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    _drop(base, name)


def _drop(base: str, name: str) -> None:
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.mark.parametrize("fresh_url", ["sqlite", "postgresql"], indirect=True)
def test_upgrade_downgrade_with_rows_and_no_drift(fresh_url, tmp_path) -> None:
    from app.demo import load_demo

    database = make_database(make_settings(fresh_url, tmp_path))
    try:
        upgrade(database.write_engine)
        assert current_revision(database.write_engine) == head_revision()
        import io

        load_demo(database, make_settings(fresh_url, tmp_path), out=io.StringIO())
        with database.write_engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(
                    conn,
                    opts={
                        "compare_type": True,
                        "include_object": include_object,
                    },
                ),
                metadata,
            )
            assert diff == []
            assert conn.execute(sa.text("SELECT count(*) FROM claims")).scalar_one() > 5
        downgrade(database.write_engine, "base")
        inspector = sa.inspect(database.write_engine)
        assert set(inspector.get_table_names()) <= {"alembic_version"}
        upgrade(database.write_engine)
        assert current_revision(database.write_engine) == head_revision()
    finally:
        database.dispose()


def test_migration_files_are_named_by_date_and_slug() -> None:
    import re
    from pathlib import Path

    names = [p.name for p in (Path(__file__).parents[1] / "migrations" / "versions").glob("*.py")]
    assert names and all(re.match(r"^\d{4}_\d{2}_\d{2}_[a-z0-9_]+\.py$", n) for n in names), names
