"""The identity schema's migrations create exactly the tables the gateway's code uses (columns,
types, indexes), end at their head revision, and running them again changes nothing."""

from __future__ import annotations

import asyncio

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from imagetron_gateway import migrations
from imagetron_gateway.adapters.tables import metadata
from imagetron_gateway.migrations import SCHEMA
from imagetron_platform.db import make_engine
from imagetron_platform.testing import schema_differences

pytestmark = pytest.mark.integration


async def test_migrations_match_the_tables_and_end_at_their_head(postgres_dsn: str) -> None:
    await asyncio.to_thread(migrations.upgrade, postgres_dsn)
    await asyncio.to_thread(migrations.upgrade, postgres_dsn)  # another replica: nothing to do
    engine = make_engine(postgres_dsn)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(schema_differences, metadata, SCHEMA) == []
            version = await connection.scalar(
                text(f'SELECT version_num FROM "{SCHEMA}".alembic_version')
            )
    finally:
        await engine.dispose()
    assert version == ScriptDirectory(str(migrations.SCRIPT_LOCATION)).get_current_head()
