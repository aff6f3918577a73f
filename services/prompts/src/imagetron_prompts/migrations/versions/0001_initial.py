"""Prompts, the phases of their generation tasks, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "prompts"


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("generation_state", sa.String(length=16), nullable=False),
        sa.Column("active_tasks", sa.Integer(), nullable=False),
        sa.Column("completed_tasks", sa.Integer(), nullable=False),
        sa.Column("failed_tasks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('new', 'approved', 'rejected', 'archived')", name="ck_prompts_status"
        ),
        sa.CheckConstraint(
            "generation_state IN ('idle', 'generating', 'generated', 'failed')",
            name="ck_prompts_generation_state",
        ),
        sa.CheckConstraint(
            "active_tasks >= 0 AND completed_tasks >= 0 AND failed_tasks >= 0",
            name="ck_prompts_counters_not_negative",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompts"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_prompts_owner_id_created_at_id",
        "prompts",
        ["owner_id", "created_at", "id"],
        schema=SCHEMA,
    )

    op.create_table(
        "prompt_tasks",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "phase IN ('active', 'completed', 'failed', 'cancelled')",
            name="ck_prompt_tasks_phase",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            [f"{SCHEMA}.prompts.id"],
            name="fk_prompt_tasks_prompt_id_prompts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name="pk_prompt_tasks"),
        schema=SCHEMA,
    )
    op.create_index("ix_prompt_tasks_prompt_id", "prompt_tasks", ["prompt_id"], schema=SCHEMA)

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("id", name="uq_outbox_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )

    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_inbox"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_index("ix_prompt_tasks_prompt_id", table_name="prompt_tasks", schema=SCHEMA)
    op.drop_table("prompt_tasks", schema=SCHEMA)
    op.drop_index("ix_prompts_owner_id_created_at_id", table_name="prompts", schema=SCHEMA)
    op.drop_table("prompts", schema=SCHEMA)
