"""The `images` schema: tasks, images, and the platform's outbox and inbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from imagetron_contracts.models.images import (
    ImageKind,
    ProcessMode,
    TaskCommand,
    TaskStatus,
    VariationStrength,
)
from imagetron_images.migrations import SCHEMA
from imagetron_platform.db import inbox_table, outbox_table

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


def _one_of(
    column: str,
    values: type[TaskStatus | TaskCommand | ProcessMode | ImageKind | VariationStrength],
) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


tasks = Table(
    "tasks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("prompt_id", Uuid, nullable=False),
    Column("command", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", SmallInteger, nullable=False),
    Column("provider", String(32), nullable=False),
    Column("provider_task_id", String(200)),
    Column("prompt_text", Text, nullable=False),
    Column("prompt_title", Text),
    Column("aspect_ratio", String(8), nullable=False),
    Column("process_mode", String(8), nullable=False),
    Column("origin_task_id", Uuid, ForeignKey("tasks.id")),
    Column("origin_index", SmallInteger),
    Column("variation_strength", String(8)),
    Column("preview_url", Text),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("reconciled_at", DateTime(timezone=True)),
    Column("dispatched_at", DateTime(timezone=True)),
    Column("submitted_at", DateTime(timezone=True)),
    Column("deadline_at", DateTime(timezone=True)),
    Column("polls", Integer, nullable=False, server_default="0"),
    Column("poll_after", DateTime(timezone=True)),
    Column("resubmit_if_lost", Boolean, nullable=False, server_default=false()),
    Column("resubmissions", SmallInteger, nullable=False, server_default="0"),
    Column(
        "abandoned_provider_task_ids",
        ARRAY(String(200)),
        nullable=False,
        server_default=text("'{}'"),
    ),
    Column("version", Integer, nullable=False, server_default="0"),
    CheckConstraint(_one_of("status", TaskStatus), name="status"),
    CheckConstraint(_one_of("variation_strength", VariationStrength), name="variation_strength"),
    CheckConstraint(_one_of("command", TaskCommand), name="command"),
    CheckConstraint(_one_of("process_mode", ProcessMode), name="process_mode"),
    CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
    CheckConstraint("origin_index BETWEEN 1 AND 4", name="origin_index"),
    # Listing: an owner's tasks newest first (keyset on created_at, id), optionally by prompt.
    Index(None, "owner_id", "created_at", "id"),
    Index(None, "owner_id", "prompt_id", "created_at", "id"),
    # Reconciliation and support: find our task from the provider's id.
    Index(None, "provider", "provider_task_id"),
    # Dispatch: a provider's tasks waiting for a slot, oldest first.
    Index(
        "ix_tasks_waiting_for_a_slot",
        "provider",
        "created_at",
        "id",
        postgresql_where=text("status = 'pending' AND dispatched_at IS NULL"),
    ),
    # Reconciliation: the tasks waiting on their provider, oldest news first.
    Index(
        "ix_tasks_awaiting_provider",
        "updated_at",
        postgresql_where=text("status IN ('submitted', 'processing')"),
    ),
    # Deadlines: the unfinished tasks that hold a slot, soonest deadline first.
    Index(
        "ix_tasks_holding_a_slot",
        "deadline_at",
        postgresql_where=text(
            "status IN ('pending', 'submitted', 'processing') AND dispatched_at IS NOT NULL"
        ),
    ),
    # Expectations: how long tasks took, from the recently completed ones.
    Index(
        "ix_tasks_completed",
        "completed_at",
        postgresql_where=text("status = 'completed'"),
    ),
)

images = Table(
    "images",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("task_id", Uuid, ForeignKey("tasks.id"), nullable=False),
    Column("prompt_id", Uuid, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("index", SmallInteger, nullable=False),
    Column("source_url", Text, nullable=False),
    Column("is_persisted", Boolean, nullable=False),
    Column("storage_key", Text),
    Column("content_type", String(64)),
    Column("size_bytes", BigInteger),
    Column("width", Integer),
    Column("height", Integer),
    Column("sha256", String(64)),
    Column("error", Text),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("persisted_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("thumbnail_key", Text),
    CheckConstraint(_one_of("kind", ImageKind), name="kind"),
    CheckConstraint('"index" BETWEEN 0 AND 4', name="index"),
    # A task yields each image once, however often its completion is reported.
    UniqueConstraint("task_id", "kind", "index"),
    Index(None, "owner_id", "prompt_id", "created_at"),
)
# Listing: an owner's images, newest task first, a task's images in order (the keyset).
Index(
    "ix_images_owner_id_listing",
    images.c.owner_id,
    images.c.created_at.desc(),
    images.c.task_id.desc(),
    images.c.index,
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
