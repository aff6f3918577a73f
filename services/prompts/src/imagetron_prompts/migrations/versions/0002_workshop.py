"""The prompt workshop: subject chats and their messages, the language-model call ledger,
and the link from a prompt to the chat it was generated in.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "prompts"


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("message_count >= 0", name="ck_chats_message_count_not_negative"),
        sa.PrimaryKeyConstraint("id", name="pk_chats"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_chats_owner_id_created_at_id",
        "chats",
        ["owner_id", "created_at", "id"],
        schema=SCHEMA,
    )

    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=True),
        sa.Column("prompt_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "purpose IN ('chat_start', 'chat_continue', 'generate_prompts', 'retitle')",
            name="ck_llm_calls_purpose",
        ),
        sa.CheckConstraint(
            "outcome IN ('ok', 'malformed', 'refused', 'truncated', 'rate_limited', "
            "'upstream_error', 'unreachable', 'rejected', 'timeout')",
            name="ck_llm_calls_outcome",
        ),
        sa.CheckConstraint(
            "prompt_tokens >= 0 AND completion_tokens >= 0 AND attempts >= 0",
            name="ck_llm_calls_usage_not_negative",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_llm_calls_owner_id_created_at", "llm_calls", ["owner_id", "created_at"], schema=SCHEMA
    )

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("subjects", postgresql.JSONB(), nullable=False),
        sa.Column("llm_call_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_chat_messages_role"),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            [f"{SCHEMA}.chats.id"],
            name="fk_chat_messages_chat_id_chats",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["llm_call_id"],
            [f"{SCHEMA}.llm_calls.id"],
            name="fk_chat_messages_llm_call_id_llm_calls",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chat_messages"),
        sa.UniqueConstraint("chat_id", "position", name="uq_chat_messages_chat_id_position"),
        schema=SCHEMA,
    )

    op.add_column("prompts", sa.Column("chat_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.create_foreign_key(
        "fk_prompts_chat_id_chats",
        "prompts",
        "chats",
        ["chat_id"],
        ["id"],
        source_schema=SCHEMA,
        referent_schema=SCHEMA,
        ondelete="SET NULL",
    )
    op.create_index("ix_prompts_chat_id", "prompts", ["chat_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_prompts_chat_id", table_name="prompts", schema=SCHEMA)
    op.drop_constraint("fk_prompts_chat_id_chats", "prompts", schema=SCHEMA, type_="foreignkey")
    op.drop_column("prompts", "chat_id", schema=SCHEMA)
    op.drop_table("chat_messages", schema=SCHEMA)
    op.drop_index("ix_llm_calls_owner_id_created_at", table_name="llm_calls", schema=SCHEMA)
    op.drop_table("llm_calls", schema=SCHEMA)
    op.drop_index("ix_chats_owner_id_created_at_id", table_name="chats", schema=SCHEMA)
    op.drop_table("chats", schema=SCHEMA)
