"""The publisher's schema: the read model of stored images, batches, publications, agency
accounts (passwords encrypted), outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
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

TABLES = ("publications", "accounts", "batches", "images", "outbox", "inbox")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("agency", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "agency", name=op.f("pk_accounts")),
        schema="publisher",
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("agency", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("csv_name", sa.String(length=64), nullable=True),
        sa.Column("csv_uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        schema="publisher",
    )
    op.create_index(
        op.f("ix_batches_owner_id_created_at_id"),
        "batches",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="publisher",
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("index", sa.SmallInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("prompt_text", sa.Text(), nullable=False),
        sa.Column("prompt_title", sa.Text(), nullable=True),
        sa.Column("persisted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        schema="publisher",
    )
    op.create_index(
        op.f("ix_images_owner_id"), "images", ["owner_id"], unique=False, schema="publisher"
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_inbox")),
        schema="publisher",
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
        schema="publisher",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        unique=False,
        schema="publisher",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "publications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column("agency", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("remote_name", sa.String(length=30), nullable=False),
        sa.Column("enlarge", sa.SmallInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("keywords", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("category", sa.SmallInteger(), nullable=True),
        sa.Column("file_type", sa.String(length=16), nullable=False),
        sa.Column("fictional_people_and_property", sa.Boolean(), nullable=False),
        sa.Column("findings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("suggesting", sa.Boolean(), nullable=False),
        sa.Column("publish_when_ready", sa.Boolean(), nullable=False),
        sa.Column("file", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_publications_attempts_not_negative")),
        sa.CheckConstraint(
            "enlarge BETWEEN 1 AND 4", name=op.f("ck_publications_enlarge_in_range")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["publisher.batches.id"], name=op.f("fk_publications_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["publisher.images.id"], name=op.f("fk_publications_image_id_images")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publications")),
        sa.UniqueConstraint("remote_name", name=op.f("uq_publications_remote_name")),
        schema="publisher",
    )
    op.create_index(
        op.f("ix_publications_batch_id"),
        "publications",
        ["batch_id"],
        unique=False,
        schema="publisher",
    )
    op.create_index(
        op.f("ix_publications_image_id"),
        "publications",
        ["image_id"],
        unique=False,
        schema="publisher",
    )
    op.create_index(
        op.f("ix_publications_owner_id_created_at_id"),
        "publications",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="publisher",
    )
    op.create_index(
        op.f("ix_publications_owner_id_status"),
        "publications",
        ["owner_id", "status"],
        unique=False,
        schema="publisher",
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table, schema="publisher")
