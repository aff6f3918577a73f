"""Tasks and images carry a version that every announced change increments (events carry it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "images"


def upgrade() -> None:
    for table in ("tasks", "images"):
        op.add_column(
            table,
            sa.Column("version", sa.Integer, nullable=False, server_default="0"),
            schema=SCHEMA,
        )


def downgrade() -> None:
    for table in ("images", "tasks"):
        op.drop_column(table, "version", schema=SCHEMA)
