"""A prompt's generation is reserved before its task exists: task phases `reserved` and
`released`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "prompts"
PHASES = ("active", "completed", "failed", "cancelled")


def _phase_check(phases: tuple[str, ...]) -> None:
    op.drop_constraint("ck_prompt_tasks_phase", "prompt_tasks", schema=SCHEMA, type_="check")
    allowed = ", ".join(f"'{p}'" for p in phases)
    op.create_check_constraint(
        "ck_prompt_tasks_phase", "prompt_tasks", f"phase IN ({allowed})", schema=SCHEMA
    )


def upgrade() -> None:
    _phase_check(("reserved", *PHASES, "released"))
    # Expired reservations are found by age.
    op.create_index(
        "ix_prompt_tasks_reserved",
        "prompt_tasks",
        ["updated_at"],
        schema=SCHEMA,
        postgresql_where="phase = 'reserved'",
    )


def downgrade() -> None:
    op.drop_index("ix_prompt_tasks_reserved", "prompt_tasks", schema=SCHEMA)
    op.execute("DELETE FROM prompts.prompt_tasks WHERE phase IN ('reserved', 'released')")
    _phase_check(PHASES)
