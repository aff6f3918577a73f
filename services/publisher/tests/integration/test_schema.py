"""The migrations create exactly the tables the code uses, and running them again is a
no-op."""

from __future__ import annotations

import asyncio

import pytest

from imagetron_platform.db import make_engine
from imagetron_platform.testing import schema_differences
from imagetron_publisher import migrations
from imagetron_publisher.adapters.tables import metadata
from imagetron_publisher.migrations import SCHEMA

pytestmark = pytest.mark.integration


async def test_migrations_match_the_tables(settings, publisher):
    await asyncio.to_thread(migrations.upgrade, settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(schema_differences, metadata, SCHEMA) == []
    finally:
        await engine.dispose()
