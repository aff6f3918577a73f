"""Every task ends: deadlines, polls by expectation, resubmission of lost tasks.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "images"
HOLDING_A_SLOT = "status IN ('pending', 'submitted', 'processing') AND dispatched_at IS NOT NULL"


def upgrade() -> None:
    for column in (
        sa.Column("submitted_at", sa.DateTime(timezone=True)),
        sa.Column("deadline_at", sa.DateTime(timezone=True)),
        sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("poll_after", sa.DateTime(timezone=True)),
        sa.Column("resubmit_if_lost", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("resubmissions", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column(
            "abandoned_provider_task_ids",
            postgresql.ARRAY(sa.String(200)),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
    ):
        op.add_column("tasks", column, schema=SCHEMA)
    # Tasks from before had no deadline: they get the default one from now.
    op.execute(
        "UPDATE images.tasks SET deadline_at = now() + interval '30 minutes' "
        "WHERE status IN ('pending', 'submitted', 'processing') AND dispatched_at IS NOT NULL"
    )
    op.create_index(
        "ix_tasks_holding_a_slot",
        "tasks",
        ["deadline_at"],
        postgresql_where=sa.text(HOLDING_A_SLOT),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tasks_completed",
        "tasks",
        ["completed_at"],
        postgresql_where=sa.text("status = 'completed'"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_completed", "tasks", schema=SCHEMA)
    op.drop_index("ix_tasks_holding_a_slot", "tasks", schema=SCHEMA)
    for column in (
        "abandoned_provider_task_ids",
        "resubmissions",
        "resubmit_if_lost",
        "poll_after",
        "polls",
        "deadline_at",
        "submitted_at",
    ):
        op.drop_column("tasks", column, schema=SCHEMA)
