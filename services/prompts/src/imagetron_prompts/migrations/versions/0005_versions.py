"""Prompts and chats carry a version every announced change increments; a prompt remembers
the newest version of each task's events it applied.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "prompts"
COLUMNS = (("prompts", "version"), ("chats", "version"), ("prompt_tasks", "task_version"))


def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(
            table,
            sa.Column(column, sa.Integer, nullable=False, server_default="0"),
            schema=SCHEMA,
        )


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        op.drop_column(table, column, schema=SCHEMA)
