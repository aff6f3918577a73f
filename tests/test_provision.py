"""`python -m imagetron.provision`: what docker-compose's `migrate` service and the Kubernetes
migrate Job run before the services start. Against a real PostgreSQL and NATS: every schema
to its head and every declared stream, idempotently; a dependency still starting is retried;
missing settings are a clear exit 2."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid

import asyncpg
import nats
import pytest
from alembic.script import ScriptDirectory

from imagetron.provision import MIGRATIONS
from imagetron_contracts.streams import STREAMS
from imagetron_gateway import migrations as gateway_migrations
from imagetron_images import migrations as images_migrations
from imagetron_platform.migrations import script_heads
from imagetron_prompts import migrations as prompts_migrations
from imagetron_publisher import migrations as publisher_migrations

pytestmark = pytest.mark.integration

SCHEMAS = {
    "identity": gateway_migrations.SCRIPT_LOCATION,
    "prompts": prompts_migrations.SCRIPT_LOCATION,
    "images": images_migrations.SCRIPT_LOCATION,
    "publisher": publisher_migrations.SCRIPT_LOCATION,
}


def run_provision(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMAGETRON_")}
    return subprocess.run(
        [sys.executable, "-m", "imagetron.provision"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def fresh_database(postgres_asyncpg_dsn: str, postgres_dsn: str) -> tuple[str, str]:
    """A database of its own, empty: (SQLAlchemy URL, asyncpg URL)."""
    name = f"provision_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(postgres_asyncpg_dsn)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return postgres_dsn.rsplit("/", 1)[0] + f"/{name}", postgres_asyncpg_dsn.rsplit("/", 1)[0] + (
        f"/{name}"
    )


def test_every_schema_reaches_its_head_and_every_stream_exists_and_again(
    fresh_database: tuple[str, str], nats_url: str
) -> None:
    database_url, asyncpg_url = fresh_database
    assert len(MIGRATIONS) == len(SCHEMAS)  # a new service's schema is listed here too
    for attempt in ("first", "again"):  # a deploy runs it every time
        run = run_provision(IMAGETRON_DATABASE_URL=database_url, IMAGETRON_NATS_URL=nats_url)
        assert run.returncode == 0, f"{attempt}: {run.stderr[-3000:]}"
        assert "schemas migrated and streams provisioned" in run.stderr
        # The second time every schema is at its head: no Alembic at all.
        said = "migrated the {} schema" if attempt == "first" else "the {} schema is at its head"
        assert [name for name, _ in MIGRATIONS if said.format(name) in run.stderr] == [
            name for name, _ in MIGRATIONS
        ], run.stderr[-3000:]

    async def versions() -> dict[str, str]:
        connection = await asyncpg.connect(asyncpg_url)
        try:
            return {
                schema: await connection.fetchval(
                    f'SELECT version_num FROM "{schema}".alembic_version'
                )
                for schema in SCHEMAS
            }
        finally:
            await connection.close()

    heads = {
        schema: ScriptDirectory(str(location)).get_current_head()
        for schema, location in SCHEMAS.items()
    }
    assert asyncio.run(versions()) == heads

    async def streams() -> dict[str, list[str]]:
        connection = await nats.connect(nats_url)
        try:
            js = connection.jetstream()
            return {
                spec.name: list((await js.stream_info(spec.name)).config.subjects or [])
                for spec in STREAMS
            }
        finally:
            await connection.close()

    assert asyncio.run(streams()) == {spec.name: list(spec.subjects) for spec in STREAMS}


def test_the_heads_read_from_the_scripts_are_alembics() -> None:
    """What `upgrade` compares a schema's version with, so that it can skip Alembic."""
    for location in SCHEMAS.values():
        assert script_heads(location) == frozenset(ScriptDirectory(str(location)).get_heads())


def test_a_dependency_still_starting_is_retried_then_its_error_is_the_exit(
    fresh_database: tuple[str, str],
) -> None:
    database_url, _ = fresh_database
    with socket.socket() as probe:  # NATS not (yet) listening there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = run_provision(
        IMAGETRON_DATABASE_URL=database_url,
        IMAGETRON_NATS_URL=f"nats://127.0.0.1:{port}",
        IMAGETRON_PROVISION_ATTEMPTS="3",
        IMAGETRON_PROVISION_RETRY_SECONDS="0.1",
    )
    assert run.returncode != 0
    assert run.stderr.count("stream provisioning failed (attempt") == 2  # then the last one raises
    assert "attempt 2/3" in run.stderr
    assert "schemas migrated and streams provisioned" not in run.stderr


def test_missing_settings_are_named() -> None:
    run = run_provision(IMAGETRON_NATS_URL="nats://127.0.0.1:4222")
    assert run.returncode == 2
    assert "set IMAGETRON_DATABASE_URL" in run.stderr
    run = run_provision()
    assert run.returncode == 2
    assert "set IMAGETRON_DATABASE_URL and IMAGETRON_NATS_URL" in run.stderr
