"""Fixtures of the publisher's tests that run without its servers: the fakes of its ports
(unit tests) and a database of their own for the repository contract."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import make_url, text

from imagetron_platform.db import make_engine
from imagetron_publisher.migrations import upgrade

from .fakes import World


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture(scope="session")
def contract_dsn(postgres_dsn: str) -> str:
    """The publisher's schema, migrated, in a database of its own: the delivery backlog is
    counted across owners, and the integration tests' publisher (session-scoped) works in
    the shared database meanwhile. Sync, so that a parametrized fixture can ask for it
    (`request.getfixturevalue`); the work runs on a thread with an event loop of its own."""
    url = make_url(postgres_dsn).set(database="publisher_contract")

    async def recreate() -> None:
        admin = make_engine(postgres_dsn).execution_options(isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f"DROP DATABASE IF EXISTS {url.database} WITH (FORCE)"))
                await conn.execute(text(f"CREATE DATABASE {url.database}"))
        finally:
            await admin.dispose()

    dsn = url.render_as_string(hide_password=False)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, recreate()).result()
        thread.submit(upgrade, dsn).result()
    return dsn
