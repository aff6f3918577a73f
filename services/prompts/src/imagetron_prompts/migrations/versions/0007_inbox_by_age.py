"""Inbox rows found by their age, so the relay's prune deletes those past retention in
bounded batches without reading the whole table (imagetron_platform.db.inbox_table).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"], schema="prompts")


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", "inbox", schema="prompts")
