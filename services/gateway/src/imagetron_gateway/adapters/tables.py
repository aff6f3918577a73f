from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from imagetron_gateway.migrations import SCHEMA

metadata = MetaData(schema=SCHEMA)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("is_admin", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    #: Set by an admin: the user's keys and sessions stop working until it is cleared.
    Column("disabled_at", DateTime(timezone=True)),
)

#: A revoked key stays (revoked_at set) so that it cannot come back, e.g. as the bootstrap
#: key on the next start; only its SHA-256 is kept.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("id", Uuid, nullable=False, unique=True, server_default=text("gen_random_uuid()")),
    Column("name", String(100), nullable=False, server_default="default"),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    # Named as migration 0001 created it (`index=True` would name it ix_identity_api_keys_…).
    Index("ix_api_keys_user_id", "user_id"),
)

#: Browser sessions (the studio). Only the session token's SHA-256 is kept. A session lives
#: no longer than the API key it was opened with: deleting the key deletes its sessions, and
#: authentication joins the key, so whatever ends a key ends its sessions at once.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column(
        "key_hash",
        String(64),
        ForeignKey(api_keys.c.key_hash, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # Named as migration 0002 created them.
    Index("ix_sessions_key_hash", "key_hash"),
    Index("ix_sessions_expires_at", "expires_at"),
    Index("ix_sessions_user_id_created_at", "user_id", "created_at"),
)

#: What each user spent per UTC day, by kind (`llm_calls`, `generations`): counted before
#: the call, given back when the call was refused (4xx). Kept for the day and the next, as
#: the charges are (`DailyBudgets.remove_past_days`): only today's is read.
daily_usage = Table(
    "daily_usage",
    metadata,
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("used", Integer, nullable=False),
    Index("ix_identity_daily_usage_day", "day"),
)

#: The request (`RequestId`: caller, Idempotency-Key and body, hashed) each charge in
#: `daily_usage` was counted for: a retry of a request already charged is not counted again,
#: and a refused one (4xx) gives back exactly its own charge, on the day it was counted.
#: Kept for the day it counts on and the next (`DailyBudgets.remove_past_days`).
request_charges = Table(
    "request_charges",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("day", Date, nullable=False, index=True),
    Column("kind", String(20), nullable=False),
)


#: The first answer to each `Idempotency-Key` of a user, replayed to a retry of the same
#: request until `expires_at`; `status` is null while the first request is being answered
#: (by whichever replica holds it until `locked_until`).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("locked_until", DateTime(timezone=True)),
    Column("status", Integer),
    Column("headers", JSONB),
    Column("body", LargeBinary),
)
