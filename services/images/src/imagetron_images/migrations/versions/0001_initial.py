"""Tasks, images, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "images"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("command", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.SmallInteger(), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_task_id", sa.String(200), nullable=True),
        sa.Column("prompt_text", sa.Text(), nullable=False),
        sa.Column("aspect_ratio", sa.String(8), nullable=False),
        sa.Column("process_mode", sa.String(8), nullable=False),
        sa.Column("origin_task_id", sa.Uuid(), nullable=True),
        sa.Column("origin_index", sa.SmallInteger(), nullable=True),
        sa.Column("preview_url", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'submitted', 'processing', 'completed', 'failed', 'cancelled')",
            name="ck_tasks_status",
        ),
        sa.CheckConstraint(
            "command IN ('imagine', 'reroll', 'variation', 'upscale')", name="ck_tasks_command"
        ),
        sa.CheckConstraint(
            "process_mode IN ('relax', 'fast', 'turbo')", name="ck_tasks_process_mode"
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="ck_tasks_progress"),
        sa.CheckConstraint("origin_index BETWEEN 1 AND 4", name="ck_tasks_origin_index"),
        sa.ForeignKeyConstraint(
            ["origin_task_id"], [f"{SCHEMA}.tasks.id"], name="fk_tasks_origin_task_id_tasks"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tasks_owner_id_created_at_id",
        "tasks",
        ["owner_id", "created_at", "id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tasks_owner_id_prompt_id_created_at_id",
        "tasks",
        ["owner_id", "prompt_id", "created_at", "id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tasks_provider_provider_task_id",
        "tasks",
        ["provider", "provider_task_id"],
        schema=SCHEMA,
    )

    op.create_table(
        "images",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("index", sa.SmallInteger(), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("is_persisted", sa.Boolean(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("persisted_at", TS, nullable=True),
        sa.CheckConstraint("kind IN ('grid', 'version', 'upscale')", name="ck_images_kind"),
        sa.CheckConstraint('"index" BETWEEN 0 AND 4', name="ck_images_index"),
        sa.ForeignKeyConstraint(
            ["task_id"], [f"{SCHEMA}.tasks.id"], name="fk_images_task_id_tasks"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("task_id", "kind", "index", name="uq_images_task_id_kind_index"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_images_owner_id_listing",
        "images",
        ["owner_id", sa.text("created_at DESC"), sa.text("task_id DESC"), "index"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_images_owner_id_prompt_id_created_at",
        "images",
        ["owner_id", "prompt_id", "created_at"],
        schema=SCHEMA,
    )

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("id", name="uq_outbox_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        postgresql_where=sa.text("published_at IS NULL"),
        schema=SCHEMA,
    )

    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("processed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_inbox"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("images", schema=SCHEMA)
    op.drop_table("tasks", schema=SCHEMA)
