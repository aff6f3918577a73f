"""Alembic migrations of the `identity` schema."""

from __future__ import annotations

from pathlib import Path

from imagetron_platform import migrations

SCRIPT_LOCATION = Path(__file__).resolve().parent
#: The schema the migrations own (its tables, and Alembic's version table).
SCHEMA = "identity"


def upgrade(database_url: str, revision: str = "head") -> bool:
    """Apply the migrations up to `revision`; whether Alembic ran (not when the schema is at
    its head already). Blocking: from async code, run it with `asyncio.to_thread`."""
    return migrations.upgrade(database_url, SCRIPT_LOCATION, SCHEMA, revision)
