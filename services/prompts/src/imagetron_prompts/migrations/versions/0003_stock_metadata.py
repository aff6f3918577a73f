"""The ledger records stock-metadata suggestions (asked by the publisher) too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "prompts"
PURPOSES = ("chat_start", "chat_continue", "generate_prompts", "retitle")


def _purpose_check(purposes: tuple[str, ...]) -> None:
    op.drop_constraint("ck_llm_calls_purpose", "llm_calls", schema=SCHEMA, type_="check")
    allowed = ", ".join(f"'{p}'" for p in purposes)
    op.create_check_constraint(
        "ck_llm_calls_purpose", "llm_calls", f"purpose IN ({allowed})", schema=SCHEMA
    )


def upgrade() -> None:
    _purpose_check((*PURPOSES, "stock_metadata"))


def downgrade() -> None:
    op.execute("DELETE FROM prompts.llm_calls WHERE purpose = 'stock_metadata'")
    _purpose_check(PURPOSES)
