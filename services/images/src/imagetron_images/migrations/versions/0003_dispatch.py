"""Tasks wait for one of their provider's slots before they are sent.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "images"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("dispatched_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    # Tasks from before: every pending one already has its submission job.
    op.execute("UPDATE images.tasks SET dispatched_at = created_at WHERE status = 'pending'")
    op.create_index(
        "ix_tasks_waiting_for_a_slot",
        "tasks",
        ["provider", "created_at", "id"],
        postgresql_where=sa.text("status = 'pending' AND dispatched_at IS NULL"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_waiting_for_a_slot", "tasks", schema=SCHEMA)
    op.drop_column("tasks", "dispatched_at", schema=SCHEMA)
