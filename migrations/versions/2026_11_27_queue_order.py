"""queue order: claims.due_sort (due_at, or a far-future stand-in) and an index in the queue's order

Revision ID: 3c1d2e4f5a6b
Revises: 97705cb58ca0
Create Date: 2026-11-27 14:30:00

Without it, queue/next on SQLite sorted every queued claim of the top priority ("deadline soonest,
none last" cannot use an index there). The column is added in place (no batch rebuild of claims,
which would drop the full-text triggers) with a constant default, then filled from due_at.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c1d2e4f5a6b"
down_revision: str | Sequence[str] | None = "97705cb58ca0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _no_deadline() -> str:
    # A constant default that both engines accept for the column type they store.
    return "9999-12-31 00:00:00.000000" if op.get_bind().dialect.name == "sqlite" else "9999-12-31 00:00:00+00"


def upgrade() -> None:
    op.add_column(
        "claims",
        sa.Column("due_sort", sa.DateTime(timezone=True), nullable=False, server_default=_no_deadline()),
    )
    op.execute("UPDATE claims SET due_sort = due_at WHERE due_at IS NOT NULL")
    op.drop_index("ix_claims_queue_order", table_name="claims")
    op.create_index(
        "ix_claims_queue_order", "claims", ["state", "priority_rank", "due_sort", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_claims_queue_order", table_name="claims")
    op.create_index("ix_claims_queue_order", "claims", ["state", "priority_rank", "due_at", "created_at"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        # SQLite drops a column in place (3.35+) as long as no index uses it.
        op.execute("ALTER TABLE claims DROP COLUMN due_sort")
    else:
        op.drop_column("claims", "due_sort")
