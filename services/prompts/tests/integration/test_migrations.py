from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from imagetron_prompts import migrations
from imagetron_prompts.adapters.tables import SCHEMA, metadata

pytestmark = pytest.mark.integration


def _schema_differences(connection: Connection) -> list[object]:
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


async def test_migrations_create_exactly_the_tables_the_code_uses(
    settings, prompts_app, session_factory
):
    # The app's start-up ran them; running them again is a no-op.
    await asyncio.to_thread(migrations.upgrade, settings.database_url)
    async with session_factory() as session:
        connection = await session.connection()
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names(schema=SCHEMA)))
        differences = await connection.run_sync(_schema_differences)
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
