"""Publications carry a version that every announced change increments (events carry it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "publications",
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        schema="publisher",
    )


def downgrade() -> None:
    op.drop_column("publications", "version", schema="publisher")
