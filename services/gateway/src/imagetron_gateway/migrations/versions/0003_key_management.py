"""API keys users manage themselves: an id, a name, an expiry, the last use, revocation;
users an admin can disable.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False, server_default=sa.text("gen_random_uuid()")),
        schema="identity",
    )
    op.create_unique_constraint("uq_api_keys_id", "api_keys", ["id"], schema="identity")
    op.add_column(
        "api_keys",
        sa.Column("name", sa.String(100), nullable=False, server_default="default"),
        schema="identity",
    )
    for column in ("expires_at", "last_used_at", "revoked_at"):
        op.add_column(
            "api_keys",
            sa.Column(column, sa.DateTime(timezone=True), nullable=True),
            schema="identity",
        )
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True)), schema="identity")


def downgrade() -> None:
    op.drop_column("users", "disabled_at", schema="identity")
    for column in ("revoked_at", "last_used_at", "expires_at", "name", "id"):
        op.drop_column("api_keys", column, schema="identity")
