"""What each user spent today: language-model calls and generations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_usage",
        sa.Column(
            "user_id",
            sa.Uuid(),
            sa.ForeignKey("identity.users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("used", sa.Integer(), nullable=False),
        schema="identity",
    )


def downgrade() -> None:
    op.drop_table("daily_usage", schema="identity")
