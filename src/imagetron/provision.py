"""One-off provisioning before the services start: schema migrations and JetStream streams.

`imagetron up` does this for the embedded stack; the compose `migrate` service and the
Kubernetes migrate Job run `python -m imagetron.provision` with the settings the services
read: `IMAGETRON_DATABASE_URL`, `IMAGETRON_NATS_URL` and its own NATS user
(`IMAGETRON_NATS_USER=provision`, `IMAGETRON_NATS_PASSWORD`, `IMAGETRON_NATS_CA_FILE`), and
`IMAGETRON_STREAM_REPLICAS`: how many servers of a NATS cluster keep each stream (3 on a
three-node cluster, which then loses no message when one node dies; 1 on a single server).
Both steps are idempotent (alembic upgrades serialise on an advisory lock; streams are
created or updated to their declared configuration), so running it on every deploy is safe.

Only the service packages are imported here, never the embedded servers: the container
image installs this package without the server wheels.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable

import nats as nats_client
from pydantic import Field

from imagetron_gateway import migrations as gateway_migrations
from imagetron_images import migrations as images_migrations
from imagetron_platform.nats_access import PROVISIONING
from imagetron_platform.nats_connection import nats_connect_options, nats_servers, provision_streams
from imagetron_platform.settings import NatsSettings
from imagetron_prompts import migrations as prompts_migrations
from imagetron_publisher import migrations as publisher_migrations

log = logging.getLogger(__name__)


class ProvisionSettings(NatsSettings):
    """The provisioning step's NATS settings, and how many servers of a NATS cluster keep
    each stream: 3 on a three-node cluster (one node can die without losing a message or
    stopping the streams), 1 on a single server. Never more than the cluster has nodes."""

    stream_replicas: int = Field(default=1, ge=1, le=5)


MIGRATIONS = (
    ("gateway", gateway_migrations.upgrade),
    ("prompts", prompts_migrations.upgrade),
    ("images", images_migrations.upgrade),
    ("publisher", publisher_migrations.upgrade),
)


def migrate(database_url: str) -> None:
    """Upgrade every service's schema to head. Blocking."""
    for name, upgrade in MIGRATIONS:
        started = time.monotonic()
        if upgrade(database_url):
            log.info("migrated the %s schema in %.2fs", name, time.monotonic() - started)
        else:
            log.info("the %s schema is at its head", name)


async def provision(
    nats: NatsSettings, *, replicas: int = 1, connect_timeout: float = 10.0
) -> None:
    """Create or update every declared JetStream stream, kept by `replicas` servers, as the
    provisioning NATS user (`nats.nats_user`; none for a NATS server without users)."""
    nc = await nats_client.connect(
        nats_servers(nats.nats_url),
        connect_timeout=connect_timeout,
        # Each server tried twice, then NoServersError: the caller retries (`_with_retries`).
        # (0 would not mean "no retry": nats-py's first connect then tries for ever.)
        max_reconnect_attempts=1,
        reconnect_time_wait=0.5,
        **nats_connect_options(nats, PROVISIONING),
    )
    try:
        await provision_streams(nc.jetstream(), replicas=replicas)
    finally:
        await nc.close()


def _with_retries(what: str, step: Callable[[], None], attempts: int, delay: float) -> None:
    """Dependencies may still be starting (compose, a fresh cluster): retry a few times."""
    for attempt in range(1, attempts + 1):
        try:
            step()
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("%s failed (attempt %d/%d): %r; retrying", what, attempt, attempts, exc)
            time.sleep(delay)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("IMAGETRON_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    database_url = os.environ.get("IMAGETRON_DATABASE_URL")
    nats_url = os.environ.get("IMAGETRON_NATS_URL")
    missing = [
        name
        for name, value in (
            ("IMAGETRON_DATABASE_URL", database_url),
            ("IMAGETRON_NATS_URL", nats_url),
        )
        if not value
    ]
    if missing or database_url is None or nats_url is None:
        log.error("set %s", " and ".join(missing))
        return 2
    attempts = int(os.environ.get("IMAGETRON_PROVISION_ATTEMPTS", "30"))
    delay = float(os.environ.get("IMAGETRON_PROVISION_RETRY_SECONDS", "2"))
    _with_retries("migrations", lambda: migrate(database_url), attempts, delay)
    settings = ProvisionSettings()
    _with_retries(
        "stream provisioning",
        lambda: asyncio.run(provision(settings, replicas=settings.stream_replicas)),
        attempts,
        delay,
    )
    log.info("schemas migrated and streams provisioned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
