"""Keep every process of the embedded stack running, as Kubernetes would.

The supervisor watches a set of `ManagedProcess`es, infrastructure and services alike (it
knows nothing of what each one is):

* A process that exits is restarted after a delay that grows with each restart in a row
  (`RestartPolicy`: 0.5 s, 1 s, 2 s ... up to 30 s) and is forgiven once it has run for a
  while. Restarting reaps the dead child, kills what it left in its process group and
  clears its stale locks (`ManagedProcess.start`).
* A process that keeps dying is in a crash loop (`crash_loop_restarts` exits within
  `crash_loop_window`): it is said so, with the last lines of its log, and is tried again at
  the longest delay, never given up.
* A process that runs but no longer answers its liveness probe for `liveness_failures`
  probes in a row is killed (SIGKILL, by PID) and restarted like one that died.
* Each process's readiness is probed too; `status()` and the status file (`status.json`,
  read by `imagetron status`) show every process: its state, PID, restarts, last exit and
  whether it is ready.

Starting a process blocks until it answers, so starts run on worker threads and the loop
keeps watching the others meanwhile. Everything it does is reported through `say`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from imagetron.servers import ManagedProcess


@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 0.5
    max_delay: float = 30.0
    #: Running this long makes the next restart a first one again.
    forgive_after: float = 60.0
    crash_loop_restarts: int = 5
    crash_loop_window: float = 120.0
    #: Liveness: probed every `probe_every` seconds; this many failures in a row kill it.
    probe_every: float = 2.0
    liveness_failures: int = 3

    def delay(self, restarts_in_a_row: int) -> float:
        return min(self.first_delay * (1 << max(restarts_in_a_row - 1, 0)), self.max_delay)


class State(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting to restart"
    CRASH_LOOP = "crash loop"
    STOPPED = "stopped"


@dataclass
class ProcessStatus:
    """What the supervisor knows of one process (also what `imagetron status` shows)."""

    name: str
    state: State
    pid: int | None = None
    ready: bool = False
    restarts: int = 0
    last_exit: str | None = None
    since: float = field(default_factory=time.time)
    log: str = ""


@dataclass
class _Watched:
    name: str
    process: ManagedProcess
    status: ProcessStatus
    in_a_row: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    exits: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    starting: concurrent.futures.Future[object] | None = None
    liveness_misses: int = 0
    next_probe: float = 0.0


class Supervisor:
    """Watches processes that are already running (`EmbeddedStack.start()` started them)
    and keeps them so; `run()` loops until `stop_requested()` returns true."""

    def __init__(
        self,
        processes: Sequence[tuple[str, ManagedProcess]],
        *,
        say: Callable[[str], None],
        policy: RestartPolicy | None = None,
        status_file: Path | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._say = say
        self._status_file = status_file
        now = time.monotonic()
        self._watched = [
            _Watched(
                name,
                process,
                ProcessStatus(name, State.RUNNING, pid=process.pid, log=str(process.log_path)),
                started_at=now,
            )
            for name, process in processes
        ]
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(len(self._watched), 1), thread_name_prefix="imagetron-restart"
        )
        self._probe_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="imagetron-probe"
        )
        self._lock = threading.Lock()
        self._status_written = 0.0

    # -- the loop

    def run(self, stop_requested: Callable[[], bool], interval: float = 0.2) -> None:
        try:
            while not stop_requested():
                self.watch_once()
                time.sleep(interval)
        finally:
            self.close()

    def watch_once(self) -> None:
        now = time.monotonic()
        for watched in self._watched:
            self._watch(watched, now)
        self._probe(now)
        self._write_status()

    def status(self) -> list[ProcessStatus]:
        with self._lock:
            return [ProcessStatus(**asdict(w.status)) for w in self._watched]

    def close(self) -> None:
        """Stop watching (the caller stops the processes): pending starts are let finish."""
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._status_file is not None:
            with contextlib.suppress(OSError):
                self._status_file.unlink()

    # -- one process

    def _watch(self, w: _Watched, now: float) -> None:
        if w.starting is not None:
            if w.starting.done():
                self._started(w, now)
            return
        if w.restart_at is not None:
            if now >= w.restart_at:
                self._restart(w, now)
            return
        if w.process.exited:
            self._died(w, now, w.process.exit_status or "exited")

    def _died(self, w: _Watched, now: float, how: str) -> None:
        ran = now - w.started_at
        if ran >= self.policy.forgive_after:
            w.in_a_row = 0
        w.in_a_row += 1
        w.exits.append(now)
        recent = [t for t in w.exits if now - t <= self.policy.crash_loop_window]
        looping = len(recent) >= self.policy.crash_loop_restarts
        delay = self.policy.max_delay if looping else self.policy.delay(w.in_a_row)
        w.restart_at = now + delay
        with self._lock:
            w.status.last_exit = how
            w.status.pid = None
            w.status.ready = False
            w.status.since = time.time()
            entering = looping and w.status.state is not State.CRASH_LOOP
            w.status.state = State.CRASH_LOOP if looping else State.WAITING
        self._say(f"{w.name} died ({how}) after {_duration(ran)}; restarting in {delay:g} s")
        if entering:
            self._say(
                f"{w.name} is in a crash loop ({len(recent)} exits in "
                f"{_duration(self.policy.crash_loop_window)}); retrying every "
                f"{self.policy.max_delay:g} s. Its log: {w.process.log_path}"
                + _tail(w.process.log_path)
            )

    def _restart(self, w: _Watched, now: float) -> None:
        w.restart_at = None
        with self._lock:
            w.status.state = (
                State.STARTING if w.status.state is not State.CRASH_LOOP else (State.CRASH_LOOP)
            )
        w.starting = self._pool.submit(w.process.start)
        w.started_at = now

    def _started(self, w: _Watched, now: float) -> None:
        future, w.starting = w.starting, None
        assert future is not None
        error = future.exception()
        if error is not None:
            self._died(w, now, f"failed to start: {str(error).splitlines()[0]}")
            return
        w.started_at = now
        w.liveness_misses = 0
        with self._lock:
            w.status.restarts += 1
            w.status.pid = w.process.pid
            w.status.state = State.RUNNING
            w.status.since = time.time()
        self._say(
            f"{w.name} restarted (pid {w.process.pid}, restart {w.status.restarts}, "
            f"{_duration(now - (w.exits[-1] if w.exits else now))} after it died)"
        )

    # -- probes (on worker threads: a probe may take a second)

    def _probe(self, now: float) -> None:
        for w in self._watched:
            if w.starting is None and w.restart_at is None and now >= w.next_probe:
                w.next_probe = now + self.policy.probe_every
                self._probe_pool.submit(self._probe_one, w)

    def _probe_one(self, w: _Watched) -> None:
        process = w.process
        if not process.running:
            return
        ready = process.is_ready()
        alive = ready or process.is_alive()
        with self._lock:
            w.status.ready = ready
            w.status.pid = process.pid
        if alive:
            w.liveness_misses = 0
            return
        w.liveness_misses += 1
        if w.liveness_misses >= self.policy.liveness_failures and process.pid is not None:
            self._say(
                f"{w.name} (pid {process.pid}) failed {w.liveness_misses} liveness probes; "
                "killing it"
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            w.liveness_misses = 0

    # -- the status file

    def _write_status(self) -> None:
        now = time.monotonic()
        if self._status_file is None or now - self._status_written < STATUS_EVERY:
            return
        self._status_written = now
        document = {
            "supervisor_pid": os.getpid(),
            "updated_at": time.time(),
            "processes": [{**asdict(s), "state": s.state.value} for s in self.status()],
        }
        temporary = self._status_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2))
        temporary.replace(self._status_file)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _tail(path: Path, lines: int = 10) -> str:
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - 8192))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    last = text.splitlines()[-lines:]
    return "".join(f"\n    {line}" for line in last)


#: How often the status file is rewritten.
STATUS_EVERY = 1.0
#: A status file older than this belongs to a supervisor that is gone.
STATUS_STALE_AFTER = 10.0


def read_status(path: Path) -> dict[str, Any] | None:
    """The status a running supervisor keeps in `path`; None when there is none, or its
    supervisor is gone (killed before it could remove the file)."""
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(report["supervisor_pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError):
        return None
    except PermissionError:
        pass
    if time.time() - float(report.get("updated_at", 0)) > STATUS_STALE_AFTER:
        return None
    return report


def format_status(report: dict[str, Any]) -> str:
    """A table of the processes in a status report."""
    rows = [("PROCESS", "STATE", "READY", "PID", "RESTARTS", "SINCE", "LAST EXIT")]
    now = time.time()
    for p in report["processes"]:
        rows.append(
            (
                p["name"],
                p["state"],
                "yes" if p["ready"] else "no",
                str(p["pid"] or "-"),
                str(p["restarts"]),
                _duration(now - p["since"]),
                p["last_exit"] or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
