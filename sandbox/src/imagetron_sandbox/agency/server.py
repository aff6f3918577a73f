"""A stand-in for a stock agency's contributor SFTP server (Adobe Stock's), with asyncssh.

Any username of letters, digits and `._@+-` logs in with the configured password and gets a
folder of its own (chroot). Uploaded CSVs are checked like the portal checks them (the
reports are on `GET /sandbox/agency/reports`). The fault knobs (`agency_*`) refuse logins,
drop the connection part-way through an upload, answer "no space left", or slow every
write; `agency_fault_attempts` limits the upload faults to the first N uploads of a file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections import deque
from pathlib import Path
from typing import Any

import asyncssh

from imagetron_sandbox.agency.csv_check import CsvReport, check_csv
from imagetron_sandbox.faults.knobs import FaultKnobs
from imagetron_sandbox.faults.store import FaultStore, within_attempts

logger = logging.getLogger(__name__)

USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
MAX_REPORTS = 1000


def final_name(path: str) -> str:
    """The name a temporary upload (`.name.part`) will be renamed to."""
    name = os.path.basename(path)
    if name.startswith(".") and name.endswith(".part"):
        return name[1 : -len(".part")]
    return name


class AgencyServer:
    def __init__(
        self, root: Path, faults: FaultStore, *, password: str, max_bytes_per_user: int
    ) -> None:
        self.root = root
        self.faults = faults
        self.password = password
        self.max_bytes_per_user = max_bytes_per_user
        self.reports: deque[CsvReport] = deque(maxlen=MAX_REPORTS)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int, host_key: asyncssh.SSHKey) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        self._acceptor = await asyncssh.listen(
            host,
            port,
            server_host_keys=[host_key],
            server_factory=lambda: _Login(self),
            sftp_factory=lambda chan: _Sftp(chan, self),
            allow_scp=False,
            login_timeout=30,
            keepalive_interval=0,
        )
        self.port = int(self._acceptor.sockets[0].getsockname()[1])
        logger.info("sandbox agency SFTP on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    def home(self, user: str) -> Path:
        if not USERNAME.match(user) or user in (".", ".."):
            raise ValueError(f"not a sandbox agency username: {user!r}")
        home = self.root / user
        home.mkdir(parents=True, exist_ok=True)
        return home

    def files(self, user: str) -> list[dict[str, Any]]:
        home = self.home(user)
        return [
            {"name": p.name, "bytes": p.stat().st_size}
            for p in sorted(home.iterdir())
            if p.is_file()
        ]

    def used_bytes(self, user: str) -> int:
        return sum(p.stat().st_size for p in self.home(user).iterdir() if p.is_file())

    def check_csv(self, user: str, path: Path) -> None:
        uploaded = {
            p.name
            for p in self.home(user).iterdir()
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".csv")
        }
        report = check_csv(user, path.name, path.read_bytes(), uploaded)
        self.reports.append(report)
        logger.info("agency CSV %s of %s: %s", path.name, user, report.accepted)

    def reset(self) -> None:
        self.reports.clear()
        for home in self.root.iterdir() if self.root.exists() else ():
            for path in home.iterdir():
                path.unlink()


class _Login(asyncssh.SSHServer):
    def __init__(self, agency: AgencyServer) -> None:
        self._agency = agency

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        if self._agency.faults.knobs.agency_auth_fail or not USERNAME.match(username):
            return False
        return secrets.compare_digest(password.encode(), self._agency.password.encode())


class _Upload:
    """What the server knows of one file open for writing."""

    def __init__(self, path: Path, knobs: FaultKnobs) -> None:
        self.path = path
        self.knobs = knobs
        self.written = 0


class _Sftp(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], agency: AgencyServer) -> None:
        self._agency = agency
        self._user = chan.get_extra_info("username")
        self._home = agency.home(self._user)
        super().__init__(chan, chroot=str(self._home).encode())
        self._uploads: dict[int, _Upload] = {}

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open(path, pflags, attrs)
        if pflags & asyncssh.FXF_WRITE:
            local = Path(os.fsdecode(self.map_path(path)))
            knobs = self._agency.faults.knobs
            attempt = self._agency.faults.uploads.hit(f"{self._user}/{final_name(str(local))}")
            if not (
                knobs.agency_upload_faulty and within_attempts(knobs.agency_fault_attempts, attempt)
            ):
                knobs = FaultKnobs()
            self._uploads[id(file_obj)] = _Upload(local, knobs)
        return file_obj

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = self._uploads.get(id(file_obj))
        if upload is not None:
            knobs = upload.knobs
            if knobs.agency_slow_ms:
                await asyncio.sleep(knobs.agency_slow_ms / 1000)
            if knobs.agency_disk_full or (
                self._agency.used_bytes(self._user) + len(data) > self._agency.max_bytes_per_user
            ):
                raise asyncssh.SFTPNoSpaceOnFilesystem("No space left on device")
            limit = knobs.agency_disconnect_after_bytes
            if limit and upload.written + len(data) >= limit:
                logger.info("agency drops %s's upload of %s", self._user, upload.path.name)
                self.channel.get_connection().abort()
                raise asyncssh.SFTPConnectionLost("connection dropped")
            upload.written += len(data)
        result = super().write(file_obj, offset, data)
        return int(result)  # type: ignore[arg-type]

    async def close(self, file_obj: object) -> None:
        upload = self._uploads.pop(id(file_obj), None)
        super().close(file_obj)
        if upload is not None and upload.path.name.endswith(".csv"):
            self._agency.check_csv(self._user, upload.path)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().rename(oldpath, newpath)
        self._renamed(newpath)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().posix_rename(oldpath, newpath)
        self._renamed(newpath)

    def _renamed(self, newpath: bytes) -> None:
        local = Path(os.fsdecode(self.map_path(newpath)))
        if local.name.endswith(".csv"):
            self._agency.check_csv(self._user, local)
