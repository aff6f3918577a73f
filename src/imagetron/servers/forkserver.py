"""A fork server: one interpreter imports the services' code once, each service is forked
from it.

Every service stays a process of its own (one crash is one process's crash), but six
interpreters importing FastAPI, SQLAlchemy, FastStream, pydantic, the OpenAI SDK ... on the
same two cores were most of `imagetron up`'s start-up and of every restart after a crash
(4 s of CPU per service on a quiet machine, 20 s and more under load). Forked from an
interpreter that has already imported them, a service begins with its modules loaded
(shared copy-on-write with its siblings) and only has to connect: gunicorn's `--preload`
and Android's zygote do the same. Linux only (it needs `pidfd_open`); elsewhere, and when
the fork server is down, services start as fresh interpreters as before.

The fork server (`python -m imagetron.servers.forkserver --lifeline FD MODULE...`) imports
each `MODULE.__main__` in turn, says so after each (`{"imported": module}`; `{"ready": ...}`
after the last), and serves requests, one JSON object per line on its stdin, answered on its
stdout; a service is forked as soon as its own module is imported, while the fork server
goes on importing the next ones (on two cores, the first services start while the last
modules are imported):

- `{"spawn": id, "module", "env", "cwd", "log"}`: fork a child that starts a session of
  its own, writes to `log`, runs with exactly `env` in `cwd` and calls `MODULE.__main__.main()`;
  answered `{"spawned": id, "pid": pid}` (or `{"spawned": id, "error": reason}`);
- when a child ends: `{"exited": pid, "returncode": rc}` (`subprocess` conventions: minus
  the signal that killed it). The child stays a zombie until the supervisor, which has
  opened its own pidfd meanwhile, answers `{"reap": pid}`, so the PID cannot be reused while
  anyone may signal it.

The children outlive the fork server (a killed fork server costs no service), but not the
supervisor: each watches the read end of a pipe (the *lifeline*) whose write end only the
supervisor holds, and stops itself (SIGTERM, as `PR_SET_PDEATHSIG` does for other children)
when it closes, however the supervisor ended.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import logging
import os
import select
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, Protocol, Self

import setproctitle

from imagetron.servers.errors import ServerError
from imagetron.servers.process import UNKNOWN_EXIT, ChildProcess, ManagedProcess

_log = logging.getLogger(__name__)

#: How long a spawn request may take before the caller starts a fresh interpreter instead.
SPAWN_TIMEOUT = 10.0


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open")


def enabled() -> bool:
    """Supported here, and not turned off (`IMAGETRON_FORK_SERVER=0`)."""
    return supported() and os.environ.get("IMAGETRON_FORK_SERVER", "1") != "0"


class ForkServerError(ServerError):
    """The fork server could not fork a service (it is down, or the fork failed)."""


# ---------------------------------------------------------------------------- the server


def _send(message: Mapping[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def _lines(fd: int) -> Iterable[list[bytes]]:
    """Complete lines read from `fd`, a batch per read; ends at end of file."""
    pending = b""
    while chunk := os.read(fd, 1 << 16):
        *lines, pending = (pending + chunk).split(b"\n")
        yield lines


def serve(lifeline: int, modules: Sequence[str] = ()) -> dict[str, Any] | None:
    """Import `modules` one after the other, saying so after each (`imported`, then `ready`
    after the last), and fork children on request until stdin closes: a request for a module
    is answered as soon as that module is imported (or failed to: the child then shows why in
    its own log), while the next ones are imported. Returns the request in a forked child
    (which then runs it), `None` in the fork server when it is done."""
    started = time.monotonic()
    pending = list(dict.fromkeys(modules))
    failed: dict[str, str] = {}
    waiting: list[dict[str, Any]] = []  # requests for a module not imported yet
    children: dict[int, int] = {}  # pid -> pidfd, until the child is reaped

    def spawn(request: dict[str, Any]) -> dict[str, Any] | None:
        """Fork `request`'s child: the request in the child, None in the server."""
        forked = _fork(request, lifeline)
        if forked is None:  # in the child
            for pidfd in children.values():
                os.close(pidfd)
            return request
        if isinstance(forked, str):
            _send({"spawned": request["spawn"], "error": forked})
        else:
            children[forked] = pidfd = os.pidfd_open(forked)
            selector.register(pidfd, selectors.EVENT_READ, forked)
            _send({"spawned": request["spawn"], "pid": forked})
        return None

    with selectors.DefaultSelector() as selector:
        selector.register(0, selectors.EVENT_READ)
        requests = iter(_lines(0))
        while True:
            # While modules are left to import, only look at what has arrived meanwhile.
            for key, _ in selector.select(0 if pending else None):
                if key.fd != 0:
                    pid = key.data
                    selector.unregister(key.fd)
                    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
                    assert info is not None  # it has exited: its pidfd is readable
                    _send({"exited": pid, "returncode": _returncode(info)})
                    continue
                batch = next(requests, None)
                if batch is None:
                    return None  # the supervisor closed our stdin (or died)
                for line in batch:
                    request: dict[str, Any] = json.loads(line)
                    if "reap" in request:
                        pid = request["reap"]
                        with contextlib.suppress(ChildProcessError):
                            os.waitpid(pid, 0)
                        os.close(children.pop(pid))
                    elif request["module"] in pending:
                        waiting.append(request)
                    elif (child := spawn(request)) is not None:
                        return child
            if not pending:
                continue
            module = pending.pop(0)
            try:
                importlib.import_module(f"{module}.__main__")
            except Exception:  # its own start will show the error in its own log
                failed[module] = traceback.format_exc(limit=-3)
                print(f"could not import {module}:\n{failed[module]}", file=sys.stderr, flush=True)
            # Out of the children's collections from now on (see `main`).
            gc.freeze()
            _send({"imported": module})
            if not pending:
                seconds = round(time.monotonic() - started, 3)
                _send({"ready": True, "seconds": seconds, "failed": sorted(failed)})
                print(f"imported {len(modules)} modules in {seconds} s", file=sys.stderr)
            for request in [r for r in waiting if r["module"] == module]:
                waiting.remove(request)
                if (child := spawn(request)) is not None:
                    return child


def _fork(request: dict[str, Any], lifeline: int) -> int | str | None:
    """Fork: the child's PID (or why not) in the server, `None` in the child."""
    if threading.active_count() != 1:
        # Forking a process with other threads could copy a lock one of them holds.
        names = ", ".join(t.name for t in threading.enumerate())
        return f"the fork server runs threads ({names}); it can not fork safely"
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        return f"fork failed: {exc}"
    if pid == 0:
        request["lifeline"] = lifeline
        return None
    return pid


def _returncode(info: os.waitid_result) -> int:
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status  # killed or dumped: the signal


def run_child(request: dict[str, Any]) -> None:
    """In a forked child: become the service the request names (like `python -m`)."""
    gc.enable()
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(request["cwd"])
    module = request["module"]
    # What `ps` shows: what `python -m` would have run. (Before the environment changes:
    # setproctitle finds the command line next to the original environment.)
    setproctitle.setproctitle(f"{sys.executable} -m {module}")
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [module]
    _watch_lifeline(request["lifeline"])
    importlib.import_module(f"{module}.__main__").main()


def _watch_lifeline(fd: int) -> None:
    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor is gone

    threading.Thread(target=watch, name="imagetron-lifeline", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imagetron.servers.forkserver")
    parser.add_argument("--lifeline", type=int, required=True)
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args(argv)
    # The children share the imported modules' memory with this process until they write to
    # it, and a collection writes to every object it examines (its reference bookkeeping):
    # no collection while importing (no freed holes among the shared objects), and every
    # object frozen out of the children's collections before they are forked (Python's
    # documented recipe, `gc.freeze`). Each child collects again from its start.
    gc.disable()
    request = serve(args.lifeline, args.modules)
    if request is not None:
        run_child(request)


# ---------------------------------------------------------------------------- the client


class _Reporter(Protocol):
    def _reap(self, pid: int) -> None: ...


class ForkedProcess:
    """A service forked by the fork server, handled like a `subprocess.Popen`: its exit
    is reported by the fork server (its parent); signals go through a pidfd."""

    def __init__(self, pid: int, server: _Reporter) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._server = server
        self._pidfd: int | None = os.pidfd_open(pid)  # the server reaps only after we say so
        self._exited = threading.Event()
        self._orphaned = False

    def _report_exit(self, returncode: int) -> None:
        self.returncode = returncode
        self._close()
        self._exited.set()
        self._server._reap(self.pid)

    def _orphan(self) -> None:
        """Its fork server died: from now on the pidfd tells whether it still runs."""
        self._orphaned = True
        self._exited.set()  # wake waiters: they poll the pidfd from now on

    def _close(self) -> None:
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)

    def poll(self) -> int | None:
        if self.returncode is None and self._orphaned and self._pidfd is not None:
            readable, _, _ = select.select([self._pidfd], [], [], 0)
            if readable:
                self.returncode = UNKNOWN_EXIT
                self._close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            self._exited.wait(0.05 if self._orphaned else remaining)
        return code

    def send_signal(self, sig: int) -> None:
        pidfd = self._pidfd
        if pidfd is not None and self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer(ManagedProcess):
    """The fork server as a supervised process, and the client that asks it for services.

    `spawn()` forks a service from it once its module is imported (`has_imported`; the
    stack's first start waits for that with `wait_for`); a caller that gets `ForkServerError`
    (the fork server is down or restarting) starts a fresh interpreter instead, so a
    service's restart never waits for the fork server's."""

    what = "fork server"
    log_name = "forkserver.log"

    def __init__(self, log_dir: Path, modules: Iterable[str], start_timeout: float = 120.0) -> None:
        super().__init__(log_dir, start_timeout=start_timeout, stop_timeout=5.0)
        self.modules = list(dict.fromkeys(modules))
        self._lifeline: tuple[int, int] | None = None
        self._state = threading.Lock()
        #: Notified when a module is imported and when the fork server stops or dies.
        self._progress = threading.Condition(self._state)
        self._ready = threading.Event()
        self._imported: set[str] = set()
        self._gone = False  # it failed to start, or died: no module will be imported
        self._pending: dict[int, Future[ForkedProcess]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._next_id = 0
        self._stdin: IO[bytes] | None = None

    # -- asking for a service

    def has_imported(self, module: str) -> bool:
        """Whether it runs and `module` can be forked from it now."""
        with self._state:
            return self._stdin is not None and module in self._imported

    def wait_for(self, module: str, timeout: float) -> bool:
        """Wait until `module` is imported (True), or until the fork server fails to start,
        dies or is stopped, or `timeout` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while module not in self._imported or self._stdin is None:
                remaining = deadline - time.monotonic()
                if self._gone or remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 1.0))
            return True

    def spawn(self, module: str, env: Mapping[str, str], cwd: Path, log: Path) -> ForkedProcess:
        request: dict[str, Any] = {"module": module, "env": dict(env), "cwd": str(cwd)}
        request["log"] = str(log)
        with self._state:
            if self._stdin is None:
                raise ForkServerError("the fork server is not running")
            if module not in self._imported:
                raise ForkServerError(f"the fork server has not imported {module}")
            self._next_id += 1
            request["spawn"] = ident = self._next_id
            answer: Future[ForkedProcess] = Future()
            self._pending[ident] = answer
            try:
                self._write(request)
            except OSError as exc:
                self._pending.pop(ident, None)
                raise ForkServerError(f"the fork server does not listen: {exc}") from exc
        try:
            return answer.result(timeout=SPAWN_TIMEOUT)
        except TimeoutError as exc:
            with self._state:  # a late answer's child is killed (`_answer`)
                self._pending.pop(ident, None)
            reason = f"no answer from the fork server in {SPAWN_TIMEOUT:.0f}s"
            raise ForkServerError(reason) from exc

    def _reap(self, pid: int) -> None:
        with self._state:
            self._children.pop(pid, None)
            if self._stdin is not None:  # else it is stopping, and reaps all as it ends
                with contextlib.suppress(OSError, ValueError):
                    self._write({"reap": pid})

    def _write(self, message: Mapping[str, Any]) -> None:
        assert self._stdin is not None
        self._stdin.write(json.dumps(message).encode() + b"\n")
        self._stdin.flush()

    # -- ManagedProcess hooks

    def _command(self) -> list[str]:
        if self._lifeline is None:
            self._lifeline = os.pipe()  # kept for our whole life: the children watch it
        read_end = self._lifeline[0]
        return [sys.executable, "-m", __name__, "--lifeline", str(read_end), *self.modules]

    def start(self) -> Self:
        try:
            return super().start()
        except BaseException:
            with self._progress:  # whoever waits for a module: it will not come
                self._gone = True
                self._progress.notify_all()
            raise

    def _start_child(self, argv: list[str], env: dict[str, str], log: IO[bytes]) -> ChildProcess:
        assert self._lifeline is not None
        self._ready.clear()
        with self._progress:
            self._imported.clear()
            self._gone = False
        proc = self._popen(
            argv,
            env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            pass_fds=(self._lifeline[0],),
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        self._stdin = proc.stdin
        threading.Thread(
            target=self._read_answers, args=(proc.stdout,), name="imagetron-forkserver", daemon=True
        ).start()
        return proc

    def _is_ready(self) -> bool:
        return self._ready.is_set()

    def stop(self) -> None:
        # Closing its stdin ends it like a program that returns (at-exit handlers included);
        # the signal of `ManagedProcess.stop` only if it does not.
        with self._state:
            stdin, self._stdin = self._stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout)
        super().stop()
        lifeline, self._lifeline = self._lifeline, None
        if lifeline is not None:  # any child still running now stops by itself
            for fd in lifeline:
                os.close(fd)

    # -- the answers

    def _read_answers(self, stdout: IO[bytes]) -> None:
        try:
            for line in stdout:
                self._answer(json.loads(line))
        finally:
            with self._progress:
                self._ready.clear()
                self._imported.clear()
                self._gone = True
                self._progress.notify_all()
                self._stdin = None
                pending, self._pending = self._pending, {}
                orphans, self._children = list(self._children.values()), {}
            for answer in pending.values():
                answer.set_exception(ForkServerError("the fork server died"))
            for child in orphans:
                child._orphan()

    def _answer(self, message: dict[str, Any]) -> None:
        if "imported" in message:
            with self._progress:
                self._imported.add(message["imported"])
                self._progress.notify_all()
        elif "ready" in message:
            self._ready.set()
        elif "spawned" in message:
            with self._state:
                answer = self._pending.pop(message["spawned"], None)
                child = None
                if "pid" in message:
                    child = self._children[message["pid"]] = ForkedProcess(message["pid"], self)
            if answer is None:  # its caller gave up waiting and started it another way
                if child is not None:
                    child.kill()
            elif child is not None:
                answer.set_result(child)
            else:
                answer.set_exception(ForkServerError(message["error"]))
        elif "exited" in message:
            with self._state:
                child = self._children.get(message["exited"])
            if child is not None:
                child._report_exit(message["returncode"])


if __name__ == "__main__":
    main()
