"""The prompts deleted lately, so that a request that created one, sent again, does not
create it again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "prompts"


def upgrade() -> None:
    op.create_table(
        "deleted_prompts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deleted_prompts"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_deleted_prompts_deleted_at", "deleted_prompts", ["deleted_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("deleted_prompts", schema=SCHEMA)
