from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect

from imagetron_platform.testing import schema_differences
from imagetron_prompts import migrations
from imagetron_prompts.adapters.tables import metadata
from imagetron_prompts.migrations import SCHEMA

pytestmark = pytest.mark.integration


async def test_migrations_create_exactly_the_tables_the_code_uses(
    settings, prompts_app, session_factory
):
    # The app's start-up ran them; running them again is a no-op.
    await asyncio.to_thread(migrations.upgrade, settings.database_url)
    async with session_factory() as session:
        connection = await session.connection()
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names(schema=SCHEMA)))
        differences = await connection.run_sync(schema_differences, metadata, SCHEMA)
    assert tables == {
        "alembic_version",
        "prompts",
        "deleted_prompts",
        "prompt_tasks",
        "chats",
        "chat_messages",
        "llm_calls",
        "outbox",
        "inbox",
    }
    assert differences == []
