"""The `prompts` schema. Alembic revisions in `migrations/versions` create exactly this;
a test compares the two."""

from __future__ import annotations

from enum import StrEnum

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
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from imagetron_contracts.models.chats import ChatRole
from imagetron_contracts.models.prompts import GenerationState, PromptStatus
from imagetron_platform.db import inbox_table, outbox_table
from imagetron_prompts.app.ports import LlmOutcome, LlmPurpose
from imagetron_prompts.domain.prompt import TaskPhase
from imagetron_prompts.migrations import SCHEMA

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


def _enum(enum_class: type[StrEnum], name: str, length: int = 16) -> Enum:
    # VARCHAR plus a CHECK constraint: adding a value later is a constraint change, not an
    # ALTER TYPE that cannot run inside a transaction.
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


# Subject chats; each holds complete exchanges (see `domain.chat`).
chats = Table(
    "chats",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("title", String(200), nullable=False),
    Column("message_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default="0"),
    CheckConstraint("message_count >= 0", name="message_count_not_negative"),
    # Owner-scoped, newest-first keyset pagination.
    Index(None, "owner_id", "created_at", "id"),
)

# Every call to the language model: what it cost and how it ended, success or not. Not
# tied to chats or prompts by foreign keys: the ledger outlives what it paid for.
llm_calls = Table(
    "llm_calls",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("purpose", _enum(LlmPurpose, "purpose", length=32), nullable=False),
    Column("outcome", _enum(LlmOutcome, "outcome", length=32), nullable=False),
    Column("model", String(200), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("chat_id", Uuid),
    Column("prompt_id", Uuid),
    Column("detail", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "prompt_tokens >= 0 AND completion_tokens >= 0 AND attempts >= 0",
        name="usage_not_negative",
    ),
    Index(None, "owner_id", "created_at"),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("chat_id", Uuid, ForeignKey(chats.c.id, ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("role", _enum(ChatRole, "role"), nullable=False),
    Column("content", Text, nullable=False),
    # The assistant's subjects, a JSON array of strings (empty for the artist's messages).
    Column("subjects", JSONB, nullable=False),
    Column("llm_call_id", Uuid, ForeignKey(llm_calls.c.id)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # One message per position: two requests continuing a chat at once cannot interleave.
    UniqueConstraint("chat_id", "position"),
)


prompts = Table(
    "prompts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    # The chat it was generated in; the handler unlinks prompts before deleting a chat
    # (announcing each change), SET NULL only backs that up.
    Column("chat_id", Uuid, ForeignKey(chats.c.id, ondelete="SET NULL")),
    Column("text", Text, nullable=False),
    Column("title", String(200)),
    Column("status", _enum(PromptStatus, "status"), nullable=False),
    Column("generation_state", _enum(GenerationState, "generation_state"), nullable=False),
    Column("active_tasks", Integer, nullable=False),
    Column("completed_tasks", Integer, nullable=False),
    Column("failed_tasks", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default="0"),
    CheckConstraint(
        "active_tasks >= 0 AND completed_tasks >= 0 AND failed_tasks >= 0",
        name="counters_not_negative",
    ),
    # Owner-scoped, newest-first keyset pagination.
    Index(None, "owner_id", "created_at", "id"),
    Index(None, "chat_id"),
)

# The prompts deleted lately: a request that created one, sent again (its first answer was
# lost), names its id (`app.requested`) and must not create it again (410).
deleted_prompts = Table(
    "deleted_prompts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False, index=True),
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
    # The task's version in the newest event that moved its phase: older events are stale.
    Column("task_version", Integer, nullable=False, server_default="0"),
    # Expired reservations are found by age.
    Index("ix_prompt_tasks_reserved", "updated_at", postgresql_where=text("phase = 'reserved'")),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
