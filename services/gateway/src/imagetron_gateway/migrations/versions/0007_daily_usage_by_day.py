"""Days of usage found by their date, so the hourly cleanup deletes those before yesterday
in bounded batches without reading the whole table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_identity_daily_usage_day", "daily_usage", ["day"], schema="identity")


def downgrade() -> None:
    op.drop_index("ix_identity_daily_usage_day", "daily_usage", schema="identity")
