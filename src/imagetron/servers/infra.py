"""The three servers together under one root directory."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from imagetron.servers.errors import ServerError
from imagetron.servers.nats import NatsCluster, NatsServer
from imagetron.servers.ports import free_ports
from imagetron.servers.postgres import PostgresServer
from imagetron.servers.s3 import S3Server

_log = logging.getLogger(__name__)


class InfraStack:
    """PostgreSQL, NATS and S3 under one root directory (``postgres/``, ``nats/``, ``s3/``).

    With ``nats_nodes`` > 1, NATS is a cluster of that many nodes (``nats/n1``, ...; see
    `NatsCluster`), each with ``nats_config``; `nats_url` names them all.

    Ports given as 0 are replaced by distinct free ports when the stack is created, so
    ``dsn``/``url``/``endpoint`` are known before ``start()`` and stay the same across
    stop/start.  ``start()`` starts the three servers in parallel (each is independent)
    and stops the ones already running if another fails; ``stop()`` stops them in
    reverse order (S3, NATS, PostgreSQL).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        postgres_port: int = 0,
        nats_port: int = 0,
        nats_monitor_port: int = 0,
        s3_port: int = 0,
        postgres_user: str = "imagetron",
        postgres_password: str = "imagetron",  # noqa: S107 - local development default
        postgres_database: str = "imagetron",
        postgres_settings: Mapping[str, str] | None = None,
        s3_access_key: str = "imagetron",
        s3_secret_key: str = "imagetron-secret",  # noqa: S107 - local development default
        s3_region: str = "us-east-1",
        nats_config: str | None = None,
        nats_nodes: int = 1,
    ) -> None:
        self.root = Path(root).absolute()
        requested = [postgres_port, nats_port, nats_monitor_port, s3_port]
        spare = iter(free_ports(requested.count(0)))
        pg_port, n_port, n_monitor_port, s_port = (p or next(spare) for p in requested)
        self.postgres = PostgresServer(
            self.root / "postgres",
            pg_port,
            user=postgres_user,
            password=postgres_password,
            database=postgres_database,
            settings=postgres_settings,
        )
        self.nats_nodes = (
            # The first node on the ports asked for; the others' and the routes' are free.
            NatsCluster(
                self.root / "nats",
                nats_nodes,
                config=nats_config,
                ports=[n_port, n_monitor_port, *free_ports(3 * nats_nodes - 2)],
            ).nodes
            if nats_nodes > 1
            else [
                NatsServer(
                    self.root / "nats", n_port, monitor_port=n_monitor_port, config=nats_config
                )
            ]
        )
        #: The first (or only) NATS server.
        self.nats = self.nats_nodes[0]
        self.s3 = S3Server(
            self.root / "s3",
            s_port,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            region=s3_region,
        )

    @property
    def nats_url(self) -> str:
        """The client URL of every NATS node, comma-separated (`IMAGETRON_NATS_URL`)."""
        return ",".join(node.url for node in self.nats_nodes)

    @property
    def servers(self) -> tuple[PostgresServer | NatsServer | S3Server, ...]:
        """The servers in start order."""
        return (self.postgres, *self.nats_nodes, self.s3)

    @property
    def startup_seconds(self) -> dict[str, float | None]:
        return {server.what: server.startup_seconds for server in self.servers}

    def start(self) -> Self:
        servers = self.servers
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=len(servers), thread_name_prefix="imagetron-infra-start"
        ) as pool:
            futures = [pool.submit(server.start) for server in servers]
            concurrent.futures.wait(futures)
        errors = [exc for f in futures if (exc := f.exception()) is not None]
        if errors:
            with contextlib.suppress(Exception):
                self.stop()
            if len(errors) == 1:
                raise errors[0]
            raise ServerError("; ".join(str(e) for e in errors)) from errors[0]
        return self

    def stop(self) -> None:
        errors: list[BaseException] = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                _log.exception("stopping %s failed", server.what)
                errors.append(exc)
        if errors:
            raise ServerError("; ".join(str(e) for e in errors)) from errors[0]

    def pids(self) -> dict[str, int | None]:
        return {server.what: server.pid for server in self.servers}

    def __iter__(self) -> Iterator[PostgresServer | NatsServer | S3Server]:
        return iter(self.servers)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
