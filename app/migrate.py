"""Running Alembic from the application (CLI, serve, tests) without the alembic command."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine


def _project_root() -> Path:
    """Where alembic.ini and migrations/ live: beside the package in a checkout or editable install,
    else the working directory (an installed package run from the project folder, as in Docker)."""
    for candidate in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (candidate / "alembic.ini").is_file() and (candidate / "migrations").is_dir():
            return candidate
    raise RuntimeError("alembic.ini and migrations/ not found beside the app package or in the working directory")


ROOT = _project_root()

# Objects that exist only for full-text search; autogenerate cannot model them, so they are
# excluded from the comparison (everything else stays strictly compared).
FULL_TEXT_TABLE_PREFIX = "claims_fts"
FULL_TEXT_COLUMNS = {("claims", "search")}
FULL_TEXT_INDEXES = {"ix_claims_search"}


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "table" and name and name.startswith(FULL_TEXT_TABLE_PREFIX):
        return False
    if type_ == "column" and (obj.table.name, name) in FULL_TEXT_COLUMNS:
        return False
    return not (type_ == "index" and name in FULL_TEXT_INDEXES)


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if url:
        config.attributes["url"] = url
    return config


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
