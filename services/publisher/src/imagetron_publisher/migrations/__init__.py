"""Alembic migrations of the `publisher` schema."""

from __future__ import annotations

from pathlib import Path

from imagetron_platform import migrations

SCRIPT_LOCATION = Path(__file__).resolve().parent


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply the migrations up to `revision`. Blocking: from async code, run it with
    `asyncio.to_thread`."""
    migrations.upgrade(database_url, SCRIPT_LOCATION, revision)
