"""Browser sessions, each tied to the API key it was opened with.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.Uuid(),
            sa.ForeignKey("identity.users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "key_hash",
            sa.String(64),
            sa.ForeignKey("identity.api_keys.key_hash", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        schema="identity",
    )
    op.create_index("ix_sessions_key_hash", "sessions", ["key_hash"], schema="identity")
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"], schema="identity")
    op.create_index(
        "ix_sessions_user_id_created_at", "sessions", ["user_id", "created_at"], schema="identity"
    )


def downgrade() -> None:
    op.drop_table("sessions", schema="identity")
