"""Each stored image records where its thumbnail is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "images"


def upgrade() -> None:
    # Images stored before get theirs on first request (app.images.image_thumbnail_url).
    op.add_column("images", sa.Column("thumbnail_key", sa.Text()), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("images", "thumbnail_key", schema=SCHEMA)
