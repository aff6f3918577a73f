"""Tasks keep their prompt's title, which their images' events carry to subscribers.

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

SCHEMA = "images"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("prompt_title", sa.Text()), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("tasks", "prompt_title", schema=SCHEMA)
