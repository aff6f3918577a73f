"""The `prompts` schema. Alembic revisions in `migrations/versions` create exactly this;
a test compares the two."""

from __future__ import annotations

from enum import StrEnum

from imagetron_contracts.models.prompts import GenerationState, PromptStatus
from imagetron_platform.db import inbox_table, outbox_table
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

from imagetron_prompts.domain.prompt import TaskPhase

SCHEMA = "prompts"

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


def _enum(enum_class: type[StrEnum], name: str) -> Enum:
    # VARCHAR plus a CHECK constraint: adding a value later is a constraint change, not an
    # ALTER TYPE that cannot run inside a transaction.
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


prompts = Table(
    "prompts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("text", Text, nullable=False),
    Column("title", String(200)),
    Column("status", _enum(PromptStatus, "status"), nullable=False),
    Column("generation_state", _enum(GenerationState, "generation_state"), nullable=False),
    Column("active_tasks", Integer, nullable=False),
    Column("completed_tasks", Integer, nullable=False),
    Column("failed_tasks", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "active_tasks >= 0 AND completed_tasks >= 0 AND failed_tasks >= 0",
        name="counters_not_negative",
    ),
    # Owner-scoped, newest-first keyset pagination.
    Index(None, "owner_id", "created_at", "id"),
)

# The phase of every generation task a prompt has heard of: what makes the counters exact
# whatever the order and number of task events (see `domain.prompt`).
prompt_tasks = Table(
    "prompt_tasks",
    metadata,
    Column("task_id", Uuid, primary_key=True),
    Column(
        "prompt_id",
        Uuid,
        ForeignKey(prompts.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("phase", _enum(TaskPhase, "phase"), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
