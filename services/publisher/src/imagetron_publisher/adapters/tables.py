"""The `publisher` schema. Alembic revisions in `migrations/versions` create exactly this;
a test compares the two."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from imagetron_platform.db import inbox_table, outbox_table
from imagetron_publisher.migrations import SCHEMA

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

# The read model: images the images service stored, as its events told us.
images = Table(
    "images",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("task_id", Uuid, nullable=False),
    Column("prompt_id", Uuid, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("index", SmallInteger, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", Text, nullable=False),
    Column("prompt_text", Text, nullable=False),
    Column("prompt_title", Text),
    Column("persisted_at", DateTime(timezone=True), nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("agency", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("csv_name", String(64)),
    Column("csv_uploaded_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Owner-scoped, newest-first keyset pagination.
    Index(None, "owner_id", "created_at", "id"),
)

publications = Table(
    "publications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("batch_id", Uuid, ForeignKey(batches.c.id), nullable=False, index=True),
    Column("image_id", Uuid, ForeignKey(images.c.id), nullable=False, index=True),
    Column("agency", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("remote_name", String(30), nullable=False, unique=True),
    Column("enlarge", SmallInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("keywords", JSONB, nullable=False),
    Column("category", SmallInteger),
    Column("file_type", String(16), nullable=False),
    Column("fictional_people_and_property", Boolean, nullable=False),
    Column("findings", JSONB, nullable=False),
    Column("suggesting", Boolean, nullable=False),
    Column("publish_when_ready", Boolean, nullable=False),
    # The prepared file (name, storage key, size, dimensions, sha256), once rendered.
    Column("file", JSONB),
    Column("error", Text),
    Column("attempts", Integer, nullable=False),
    Column("rejection_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("uploaded_at", DateTime(timezone=True)),
    Column("submitted_at", DateTime(timezone=True)),
    Column("decided_at", DateTime(timezone=True)),
    # Every announced change increments it; its events carry it (0: none announced since the
    # column exists).
    Column("version", Integer, nullable=False, server_default="0"),
    CheckConstraint("enlarge BETWEEN 1 AND 4", name="enlarge_in_range"),
    CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    # Owner-scoped, newest-first keyset pagination, and the extension's status listing.
    Index(None, "owner_id", "created_at", "id"),
    Index(None, "owner_id", "status"),
    # The delivery backlog gauge (queued and uploading, oldest first), across owners.
    Index(
        "ix_publications_in_delivery",
        "updated_at",
        postgresql_where=text("status IN ('queued', 'uploading')"),
    ),
)

# The artists' agency credentials; `secret` is the password encrypted (never plain).
accounts = Table(
    "accounts",
    metadata,
    Column("owner_id", Uuid, primary_key=True),
    Column("agency", String(32), primary_key=True),
    Column("username", String(200), nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
