"""Inbox rows found by their age, so the relay's prune deletes those past retention in
bounded batches without reading the whole table (imagetron_platform.db.inbox_table).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"], schema="publisher")


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", "inbox", schema="publisher")
