"""The embedded Imagetron: infrastructure, sandbox and the five services as child processes.

`imagetron up` and the end-to-end tests both use `EmbeddedStack`: PostgreSQL, NATS and S3
from wheels (`imagetron.servers`), migrations and stream provisioning, then the sandbox and the
services, each a separate process that must answer `/readyz` before the stack is ready.
Everything lives under one root directory; secrets are generated on the first start and
kept there, so a second start reuses data, keys and the admin user.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import http.client
import json
import logging
import os
import secrets
import sys
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from imagetron.servers import (
    LOCALHOST,
    CaddyProxy,
    InfraStack,
    ManagedProcess,
    ServerStartError,
    ensure_port_free,
    forkserver,
    free_ports,
)
from imagetron.servers.errors import ServerExitedError
from imagetron.servers.forkserver import ForkServer, ForkServerError
from imagetron.servers.ports import reserve_ports
from imagetron.servers.process import ChildProcess
from imagetron.stack_ports import APP_MODULES, FORK_ORDER, StackPorts
from imagetron_gateway.domain.identity import new_api_key
from imagetron_platform import nats_access
from imagetron_platform.nats_access import NatsPermissions

if TYPE_CHECKING:
    from imagetron_platform.settings import NatsSettings

log = logging.getLogger(__name__)

SANDBOX_GOAPI_KEY = "sandbox-goapi-key"


#: The embedded stack's own NATS user, allowed everything: for its operator and the tests.
NATS_ADMIN = "admin"
NATS_USERS: dict[str, NatsPermissions] = {
    **nats_access.USERS,
    NATS_ADMIN: NatsPermissions(publish=(">",), subscribe=(">",)),
}


@dataclass(frozen=True)
class StackSecrets:
    webhook_secret: str
    webhook_token_key: str
    events_token_secret: str
    admin_api_key: str
    credentials_key: str
    #: One per NATS user (`NATS_USERS`).
    nats_passwords: dict[str, str]

    @classmethod
    def load_or_create(cls, path: Path, admin_api_key: str | None) -> StackSecrets:
        stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        values: dict[str, Any] = {
            f.name: stored.get(f.name) or secrets.token_urlsafe(32)
            for f in fields(cls)
            if f.name != "nats_passwords"
        }
        known = stored.get("nats_passwords", {})
        values["nats_passwords"] = {
            user: known.get(user) or secrets.token_urlsafe(32) for user in NATS_USERS
        }
        if admin_api_key:
            values["admin_api_key"] = admin_api_key
        elif "admin_api_key" not in stored:
            values["admin_api_key"] = new_api_key()
        if values != stored:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(json.dumps(values, indent=2))
        return cls(**values)


def agency_host_key(directory: Path, port: int) -> tuple[Path, str]:
    """The sandbox agency's SFTP host key (made on the first start, then kept) and the
    known_hosts line the publisher verifies it with.

    Its public key is kept beside it (`agency_host_key.pub.json`, with the digest of the key
    file it was derived from), so that a start reads it without importing asyncssh (0.15 s
    of CPU); a key file that is not the one it was derived from is read again."""
    path = directory / "agency_host_key"
    public = _known_public_key(path)
    if public is None:
        import asyncssh  # only when a stack starts: the `imagetron` client commands need none

        if path.exists():
            key = asyncssh.read_private_key(path)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            key = asyncssh.generate_private_key("ssh-ed25519")
            path.touch(mode=0o600)
            key.write_private_key(path)
        public = key.export_public_key().decode().strip()
        _public_key_path(path).write_text(
            json.dumps({"private_key_sha256": _digest(path), "public_key": public})
        )
    return path, f"[{LOCALHOST}]:{port} {public}"


def _public_key_path(key: Path) -> Path:
    return key.with_name(key.name + ".pub.json")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _known_public_key(key: Path) -> str | None:
    """The public key derived from `key` before, if `key` is still that same file."""
    try:
        known = json.loads(_public_key_path(key).read_text())
        if known["private_key_sha256"] == _digest(key):
            public = known["public_key"]
            return public if isinstance(public, str) and public else None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


class AppProcess(ManagedProcess):
    """One of our own processes (`python -m <module>`), ready when `/readyz` answers 200.

    With a running `fork_server` it is forked from it (its code already imported) instead of
    starting a fresh interpreter."""

    fork_server: ForkServer | None = None

    def __init__(
        self,
        name: str,
        module: str,
        port: int,
        env: dict[str, str],
        log_dir: Path,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(log_dir, start_timeout=start_timeout, stop_timeout=15.0)
        self.what = self.name = name
        self.module = module
        self.port = port
        self.env = env

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def __repr__(self) -> str:
        return f"<AppProcess {self.name} pid={self.pid}>"

    def _prepare(self, deadline: float) -> None:
        ensure_port_free(self.port, self.name)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def _environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _start_child(self, argv: list[str], env: dict[str, str], log: IO[bytes]) -> ChildProcess:
        server = self.fork_server
        if server is not None and server.has_imported(self.module):
            log.write(b"(forked from the fork server)\n")
            log.flush()
            try:
                return server.spawn(self.module, env, self.data_dir, self.log_path)
            except ForkServerError as exc:
                log.write(f"(could not fork: {exc}; a new interpreter instead)\n".encode())
                log.flush()
        return super()._start_child(argv, env, log)

    def _is_ready(self) -> bool:
        return self._answers("/readyz")

    def is_alive(self) -> bool:
        """`/livez` answers: the process serves, whether or not its dependencies do."""
        return self.running and self._answers("/livez")

    def _answers(self, path: str) -> bool:
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


#: What runs as several replicas in a cluster: every service of ours (the sandbox stands in
#: for third parties: one).
REPLICATED = ("prompts", "images", "notifier", "publisher", "gateway")
#: The replicas clients reach over HTTP, behind the proxy on the service's own port.
PROXIED = ("gateway", "notifier")


@dataclass(frozen=True)
class ClusterShape:
    """How many of each: `replicas` of every service in `REPLICATED`, `nats_nodes` NATS
    servers routed into one JetStream cluster whose streams keep `stream_replicas` copies."""

    replicas: int = 1
    nats_nodes: int = 1

    @property
    def stream_replicas(self) -> int:
        return min(self.nats_nodes, 3)

    @property
    def clustered(self) -> bool:
        return self.replicas > 1 or self.nats_nodes > 1


#: `imagetron up --cluster`: what a multi-node deployment runs, on one machine.
CLUSTER = ClusterShape(replicas=2, nats_nodes=3)


#: How often a service that exits during the stack's start is started again before the start
#: fails (all starting at once on a busy machine, one may find NATS too slow to answer).
START_ATTEMPTS = 3


def _start_patiently(process: ManagedProcess) -> None:
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            process.start()
            return
        except ServerExitedError as exc:
            if attempt == START_ATTEMPTS:
                raise
            log.warning(
                "%s %s; starting it again (attempt %d of %d)",
                process.what,
                exc.reason,
                attempt + 1,
                START_ATTEMPTS,
            )


class EmbeddedStack:
    """The whole of Imagetron on this machine. With a `shape` of several replicas
    (`imagetron up --cluster`) every service runs that many times, the gateways and the
    notifiers behind a reverse proxy (Caddy, on the gateway's and notifier's ports, as
    Traefik or an Ingress would be), and NATS is a cluster of `shape.nats_nodes` servers,
    every one with the same users, whose streams keep `shape.stream_replicas` copies."""

    def __init__(
        self,
        root: Path | str,
        ports: StackPorts | None = None,
        *,
        admin_api_key: str | None = None,
        log_json: bool = True,
        extra_env: dict[str, str] | None = None,
        shape: ClusterShape | None = None,
        fork_server: ForkServer | bool | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.ports = ports or StackPorts()
        # Drawn or given elsewhere, bound only later: this process's own draws (the S3
        # server's internal ports, extra replicas) must not take one meanwhile.
        reserve_ports(astuple(self.ports))
        self.shape = shape or ClusterShape()
        self.secrets = StackSecrets.load_or_create(self.root / "secrets.json", admin_api_key)
        self.infra = InfraStack(
            self.root,
            postgres_port=self.ports.postgres,
            nats_port=self.ports.nats,
            nats_monitor_port=self.ports.nats_monitor,
            s3_port=self.ports.s3,
            # Every service its own NATS user, allowed only its subjects; no anonymous use.
            nats_config=nats_access.authorization_config(
                self.secrets.nats_passwords, users=NATS_USERS
            ),
            nats_nodes=self.shape.nats_nodes,
        )
        # Each replica's own port; a proxied service's port is then the proxy's.
        replicas = self.shape.replicas
        self._replica_ports = {
            service: free_ports(replicas) if replicas > 1 else [getattr(self.ports, service)]
            for service in REPLICATED
        }
        self.apps = self._build_apps(log_json, extra_env or {})
        # The services forked from one interpreter that imported them all (unless
        # IMAGETRON_FORK_SERVER=0): most of their start-up is that import. One may be given
        # already starting (`imagetron up` starts it first of all).
        if fork_server is None:
            fork_server = forkserver.enabled()
        if isinstance(fork_server, ForkServer):
            self.fork_server: ForkServer | None = fork_server
        elif fork_server:
            self.fork_server = ForkServer(self.root / "logs", FORK_ORDER)
        else:
            self.fork_server = None
        for app in self.apps.values():
            app.fork_server = self.fork_server
        self.proxy = (
            CaddyProxy(
                self.root / "proxy",
                {getattr(self.ports, service): self._replica_ports[service] for service in PROXIED},
            )
            if replicas > 1
            else None
        )

    @property
    def gateway_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.gateway}"

    @property
    def admin_api_key(self) -> str:
        return self.secrets.admin_api_key

    def nats_settings(self, user: str) -> NatsSettings:
        """How `user` (a service, `provision` or `NATS_ADMIN`) reaches this stack's NATS."""
        # Imported here, like everything the stack's start does not need before its servers
        # run: `imagetron up` starts them sooner (see `start`).
        from pydantic import SecretStr

        from imagetron_platform.settings import NatsSettings

        return NatsSettings(
            nats_url=self.infra.nats_url,
            nats_user=user,
            nats_password=SecretStr(self.secrets.nats_passwords[user]),
        )

    def nats_connect_options(self, user: str = NATS_ADMIN) -> dict[str, Any]:
        """`nats.connect(**...)` as `user` (by default the stack's admin)."""
        from imagetron_platform.nats_connection import nats_connect_options, nats_servers

        settings = self.nats_settings(user)
        return {"servers": nats_servers(settings.nats_url), **nats_connect_options(settings, user)}

    def _build_apps(self, log_json: bool, extra_env: dict[str, str]) -> dict[str, AppProcess]:
        p, s, infra = self.ports, self.secrets, self.infra
        sandbox_url = f"http://{LOCALHOST}:{p.sandbox}"
        agency_key, agency_known_hosts = agency_host_key(self.root / "sandbox", p.sandbox_sftp)
        s3 = {
            "IMAGETRON_S3_ENDPOINT": infra.s3.endpoint,
            "IMAGETRON_S3_ACCESS_KEY": infra.s3.access_key,
            "IMAGETRON_S3_SECRET_KEY": infra.s3.secret_key,
            "IMAGETRON_S3_REGION": infra.s3.region,
        }
        common = {
            "IMAGETRON_NATS_URL": infra.nats_url,
            "IMAGETRON_DATABASE_URL": infra.postgres.dsn,
            "IMAGETRON_LOG_JSON": str(log_json).lower(),
            "IMAGETRON_WEBHOOK_SECRET": s.webhook_secret,
            "IMAGETRON_WEBHOOK_TOKEN_KEY": s.webhook_token_key,
            "IMAGETRON_EVENTS_TOKEN_SECRET": s.events_token_secret,
            **extra_env,
        }
        specific: dict[str, tuple[str, int, dict[str, str]]] = {
            "sandbox": (
                APP_MODULES["sandbox"],
                p.sandbox,
                {
                    "IMAGETRON_SANDBOX_HOST": LOCALHOST,
                    "IMAGETRON_SANDBOX_PORT": str(p.sandbox),
                    "IMAGETRON_SANDBOX_PUBLIC_BASE_URL": sandbox_url,
                    "IMAGETRON_SANDBOX_GOAPI_API_KEY": SANDBOX_GOAPI_KEY,
                    # The stand-in stock agency: SFTP with a host key the publisher trusts.
                    "IMAGETRON_SANDBOX_AGENCY_PORT": str(p.sandbox_sftp),
                    "IMAGETRON_SANDBOX_AGENCY_HOST_KEY": str(agency_key),
                    "IMAGETRON_SANDBOX_AGENCY_ROOT": str(self.root / "sandbox" / "agency"),
                },
            ),
            "prompts": (
                APP_MODULES["prompts"],
                p.prompts,
                {"IMAGETRON_LLM_BASE_URL": f"{sandbox_url}/v1", "IMAGETRON_LLM_API_KEY": "sandbox"},
            ),
            "images": (
                APP_MODULES["images"],
                p.images,
                {
                    "IMAGETRON_GOAPI_BASE_URL": sandbox_url,
                    "IMAGETRON_GOAPI_API_KEY": SANDBOX_GOAPI_KEY,
                    # IMAGETRON_PROVIDER=midjourney_proxy: the sandbox's fork face, or with
                    # IMAGETRON_MIDJOURNEY_PROXY_API=change its original (novicezk) face.
                    "IMAGETRON_MIDJOURNEY_PROXY_BASE_URL": sandbox_url
                    + (
                        "/novicezk"
                        if os.environ.get("IMAGETRON_MIDJOURNEY_PROXY_API") == "change"
                        else ""
                    ),
                    "IMAGETRON_WEBHOOK_PUBLIC_BASE_URL": self.gateway_url,
                    **s3,
                    "IMAGETRON_S3_PUBLIC_ENDPOINT": infra.s3.endpoint,
                    # The sandbox serves its images on loopback, which the SSRF guard
                    # refuses unless explicitly allowed.
                    "IMAGETRON_DOWNLOAD_ALLOW_HOSTS": json.dumps([f"{LOCALHOST}:{p.sandbox}"]),
                },
            ),
            "notifier": (APP_MODULES["notifier"], p.notifier, {}),
            "publisher": (
                APP_MODULES["publisher"],
                p.publisher,
                {
                    **s3,
                    "IMAGETRON_CREDENTIALS_KEY": s.credentials_key,
                    # "Adobe Stock" is the sandbox's agency here; it takes the CSV by SFTP.
                    "IMAGETRON_ADOBE_STOCK_SFTP_HOST": LOCALHOST,
                    "IMAGETRON_ADOBE_STOCK_SFTP_PORT": str(p.sandbox_sftp),
                    "IMAGETRON_ADOBE_STOCK_SFTP_KNOWN_HOSTS": agency_known_hosts,
                    "IMAGETRON_ADOBE_STOCK_UPLOAD_CSV": "true",
                },
            ),
            "gateway": (
                APP_MODULES["gateway"],
                p.gateway,
                {
                    "IMAGETRON_BOOTSTRAP_API_KEY": s.admin_api_key,
                    "IMAGETRON_NOTIFIER_URL": f"http://{LOCALHOST}:{p.notifier}",
                },
            ),
        }
        logs = self.root / "logs"
        apps: dict[str, AppProcess] = {}
        for service, (module, port, env) in specific.items():
            ports = self._replica_ports.get(service, [port])
            for replica, replica_port in enumerate(ports, start=1):
                name = service if len(ports) == 1 else f"{service}-{replica}"
                apps[name] = AppProcess(
                    name,
                    module,
                    replica_port,
                    {
                        **common,
                        **env,
                        **self._nats_credentials(service),
                        "IMAGETRON_HTTP_PORT": str(replica_port),
                        "IMAGETRON_HTTP_HOST": LOCALHOST,
                    },
                    logs,
                    # A cluster starts twice the processes on the same cores.
                    start_timeout=60.0 * self.shape.replicas,
                )
        return apps

    def _nats_credentials(self, service: str) -> dict[str, str]:
        if service not in nats_access.USERS:
            return {}  # the sandbox does not use NATS
        return {
            "IMAGETRON_NATS_USER": service,
            "IMAGETRON_NATS_PASSWORD": self.secrets.nats_passwords[service],
        }

    def start(self) -> Self:
        self.ports.check_free()
        started = time.monotonic()
        try:
            with concurrent.futures.ThreadPoolExecutor(2, "imagetron-stack-start") as pool:
                # The fork server imports the services' code while the infrastructure starts.
                preloading = pool.submit(self.fork_server.start) if self.fork_server else None
                infra = pool.submit(self.infra.start)
                # Imported while the servers start (and only by a start: the `imagetron`
                # command's client commands import this module for nothing else).
                from imagetron import provision

                infra.result()
                provision.migrate(self.infra.postgres.dsn)
                asyncio.run(
                    provision.provision(
                        self.nats_settings(nats_access.PROVISIONING),
                        replicas=self.shape.stream_replicas,
                    )
                )
                # Each service is forked as soon as the fork server has imported its module,
                # while it imports the next ones (`_start_apps`).
                self._start_apps()
                if preloading is not None:
                    try:
                        preloading.result()
                    except ServerStartError as exc:
                        log.warning("%s; the services started as new interpreters", exc)
        except BaseException:
            self.stop()
            raise
        log.info("embedded stack ready in %.1fs", time.monotonic() - started)
        return self

    @property
    def _front(self) -> list[ManagedProcess]:
        """The services and, in a cluster, the proxy in front of them."""
        return [*self.apps.values(), *([self.proxy] if self.proxy is not None else [])]

    def _start_apps(self) -> None:
        apps = self._front
        with concurrent.futures.ThreadPoolExecutor(len(apps), "imagetron-app-start") as pool:
            for future in [pool.submit(self._start_app, app) for app in apps]:
                future.result()

    def _start_app(self, app: ManagedProcess) -> None:
        server = self.fork_server
        if server is not None and isinstance(app, AppProcess):
            # Forked once the fork server has its code (a new interpreter if it fails).
            server.wait_for(app.module, server.start_timeout)
        _start_patiently(app)

    def exited(self) -> list[AppProcess]:
        """Processes that were started and have since died."""
        return [app for app in self.apps.values() if app.exited]

    def processes(self) -> list[tuple[str, ManagedProcess]]:
        """Every process of the stack, infrastructure first, by name (what a supervisor
        watches; each is started, probed and stopped the same way)."""
        nodes = self.infra.nats_nodes
        nats: list[tuple[str, ManagedProcess]] = (
            [(f"nats-{i}", node) for i, node in enumerate(nodes, start=1)]
            if len(nodes) > 1
            else [("nats", self.infra.nats)]
        )
        proxy: list[tuple[str, ManagedProcess]] = (
            [("proxy", self.proxy)] if self.proxy is not None else []
        )
        forks: list[tuple[str, ManagedProcess]] = (
            [("forkserver", self.fork_server)] if self.fork_server is not None else []
        )
        return [
            ("postgres", self.infra.postgres),
            *nats,
            ("s3", self.infra.s3),
            *forks,
            *self.apps.items(),
            *proxy,
        ]

    @property
    def status_path(self) -> Path:
        """Where a supervisor of this stack keeps its status (`imagetron status`)."""
        return self.root / "status.json"

    def stop(self) -> None:
        for app in reversed(self._front):
            try:
                app.stop()
            except Exception:
                log.exception("could not stop %s", app.what)
        if self.fork_server is not None:
            self.fork_server.stop()
        self.infra.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
