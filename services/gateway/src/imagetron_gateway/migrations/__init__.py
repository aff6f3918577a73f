"""Alembic migrations of the `identity` schema."""

from __future__ import annotations

from pathlib import Path

from imagetron_platform import migrations

SCRIPT_LOCATION = Path(__file__).resolve().parent


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking: from async code call it through `asyncio.to_thread`."""
    migrations.upgrade(database_url, SCRIPT_LOCATION, revision)
