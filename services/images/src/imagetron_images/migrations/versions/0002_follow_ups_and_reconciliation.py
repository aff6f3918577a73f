"""Variation strength on tasks, and what reconciliation needs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "images"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("variation_strength", sa.String(8)), schema=SCHEMA)
    op.add_column("tasks", sa.Column("reconciled_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_check_constraint(
        "ck_tasks_variation_strength",
        "tasks",
        "variation_strength IN ('subtle', 'strong')",
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tasks_awaiting_provider",
        "tasks",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('submitted', 'processing')"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_awaiting_provider", "tasks", schema=SCHEMA)
    op.drop_constraint("ck_tasks_variation_strength", "tasks", schema=SCHEMA)
    op.drop_column("tasks", "reconciled_at", schema=SCHEMA)
    op.drop_column("tasks", "variation_strength", schema=SCHEMA)
