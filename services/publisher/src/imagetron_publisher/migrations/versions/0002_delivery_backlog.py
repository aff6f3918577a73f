"""An index for the delivery backlog gauge: queued and uploading publications by age.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_publications_in_delivery",
        "publications",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('queued', 'uploading')"),
        schema="publisher",
    )


def downgrade() -> None:
    op.drop_index("ix_publications_in_delivery", "publications", schema="publisher")
