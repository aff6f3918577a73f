"""The migrations create exactly the tables the code uses, and running them again is a
no-op."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from imagetron_platform.db import make_engine
from imagetron_publisher import migrations
from imagetron_publisher.adapters.tables import SCHEMA, metadata

pytestmark = pytest.mark.integration


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _parent: type_ != "schema" or name == SCHEMA,
            "version_table_schema": SCHEMA,
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_tables(settings, publisher):
    await asyncio.to_thread(migrations.upgrade, settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()
