"""Uploads to an agency's SFTP server with asyncssh (Adobe Stock's contributor SFTP).

One connection per upload, bounded in time: connecting and logging in by
`connect_timeout_seconds`, the whole upload by `upload_timeout_seconds` plus the time the
file takes at `min_bytes_per_second`. A file goes to a temporary name and is then renamed,
so the agency never sees half a file under the real name after an interrupted upload; a
file of the same size already under the real name is taken as an earlier complete upload
(the names are one per publication). The password is only handed to asyncssh, never
logged, and never part of an error message.
"""

from __future__ import annotations

import asyncio
import logging

import asyncssh

from imagetron_publisher.app.ports import (
    AgencyRefused,
    AgencyUnavailable,
    Credentials,
    UploadResult,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
_NO_SPACE = (asyncssh.SFTPNoSpaceOnFilesystem, asyncssh.SFTPQuotaExceeded)


class SftpAgency:
    """The AgencyDelivery port for an agency reached by SFTP."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        known_hosts: str | None,
        takes_csv: bool,
        connect_timeout_seconds: float = 20.0,
        upload_timeout_seconds: float = 120.0,
        min_bytes_per_second: int = 256 * 1024,
    ) -> None:
        self._name = name
        self._host = host
        self._port = port
        # asyncssh takes known_hosts as the file's text (bytes) or a path; None would mean
        # "accept any host key", which is allowed only when the operator configured none.
        self._known_hosts = None if known_hosts is None else known_hosts.encode()
        self._takes_csv = takes_csv
        self._connect_timeout = connect_timeout_seconds
        self._upload_timeout = upload_timeout_seconds
        self._min_rate = min_bytes_per_second
        if known_hosts is None:
            log.warning(
                "%s SFTP host key is not verified: set its known_hosts line in the settings",
                name,
            )

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def takes_csv(self) -> bool:
        return self._takes_csv

    def deadline_seconds(self, size: int) -> float:
        """How long one upload of `size` bytes may take, connecting included."""
        return upload_deadline(self._connect_timeout, self._upload_timeout, self._min_rate, size)

    async def upload(
        self, credentials: Credentials, name: str, data: bytes, *, replace: bool = False
    ) -> UploadResult:
        where = f"{credentials.username}@{self._host}:{self._port}"
        try:
            async with asyncio.timeout(self.deadline_seconds(len(data))):
                return await self._upload(credentials, name, data, replace)
        except asyncssh.PermissionDenied as exc:
            raise AgencyRefused(
                f"{self._name} refused the SFTP login of {where}: the username or password is "
                "wrong (Adobe Stock generates the SFTP password in the contributor portal; set "
                "it again here, then publish again).",
                cause="login",
            ) from exc
        except asyncssh.HostKeyNotVerifiable as exc:
            raise AgencyRefused(
                f"The SFTP server at {self._host}:{self._port} did not present the host key "
                "configured for it; the upload was not attempted (check the known_hosts setting).",
                cause="host_key",
            ) from exc
        except asyncssh.SFTPError as exc:
            # SFTP v3 has no "disk full" code: servers send a failure whose text says so.
            if isinstance(exc, _NO_SPACE) or "space" in exc.reason.lower():
                raise AgencyUnavailable(
                    f"{self._name}'s SFTP server has no space left for {name} ({exc.reason}).",
                    cause="no_space",
                ) from exc
            raise AgencyUnavailable(
                f"{self._name}'s SFTP server failed on {name}: {exc.reason}", cause="server"
            ) from exc
        except TimeoutError as exc:
            raise AgencyUnavailable(
                f"Uploading {name} to {self._name} took longer than "
                f"{self.deadline_seconds(len(data)):.0f} s.",
                cause="timeout",
            ) from exc
        except (asyncssh.Error, OSError) as exc:
            raise AgencyUnavailable(
                f"The connection to {self._name} ({self._host}:{self._port}) failed: "
                f"{type(exc).__name__}: {exc}",
                cause="network",
            ) from exc

    async def _upload(
        self, credentials: Credentials, name: str, data: bytes, replace: bool
    ) -> UploadResult:
        async with asyncssh.connect(
            self._host,
            self._port,
            username=credentials.username,
            password=credentials.password,
            known_hosts=self._known_hosts,
            client_keys=None,
            agent_path=None,
            preferred_auth="password",
            connect_timeout=self._connect_timeout,
            config=None,
        ) as connection:
            async with connection.start_sftp_client() as sftp:
                if not replace and await _size_of(sftp, name) == len(data):
                    return UploadResult.ALREADY_THERE
                temporary = f".{name}.part"
                async with sftp.open(temporary, "wb") as remote:
                    for start in range(0, len(data), CHUNK_BYTES):
                        await remote.write(data[start : start + CHUNK_BYTES], start)
                await _move(sftp, temporary, name)
        return UploadResult.UPLOADED


def upload_deadline(
    connect_seconds: float, upload_seconds: float, min_bytes_per_second: int, size: int
) -> float:
    return connect_seconds + upload_seconds + size / min_bytes_per_second


async def _size_of(sftp: asyncssh.SFTPClient, name: str) -> int | None:
    try:
        attrs = await sftp.stat(name)
    except asyncssh.SFTPNoSuchFile:
        return None
    return attrs.size


async def _move(sftp: asyncssh.SFTPClient, source: str, target: str) -> None:
    """Rename over an existing file: atomically where the server offers POSIX renames,
    else by removing the old one first (SFTP v3 rename refuses to overwrite)."""
    try:
        await sftp.posix_rename(source, target)
        return
    except asyncssh.SFTPOpUnsupported:
        pass
    if await _size_of(sftp, target) is not None:
        await sftp.remove(target)
    await sftp.rename(source, target)
