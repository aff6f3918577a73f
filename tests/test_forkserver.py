"""The fork server: services forked from one interpreter that imported their code once.

A small package written for each test stands in for a service: importing it appends the
importing PID to a file (so the tests see who imported it, and how often), and its
`__main__.main()` does what its environment asks (report its circumstances, exit with a
code, run until stopped).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagetron.servers import ServerError, forkserver
from imagetron.servers.forkserver import ForkedProcess, ForkServer, ForkServerError
from imagetron.servers.process import UNKNOWN_EXIT, describe_exit

pytestmark = pytest.mark.skipif(not forkserver.supported(), reason="the fork server is Linux-only")


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The `forkdemo` package (and a broken `forkbroken`), importable by the fork server."""
    package = tmp_path / "code" / "forkdemo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            import os
            from pathlib import Path
            with Path(__file__).with_name("imports.log").open("a") as log:
                log.write(f"{os.getpid()}\\n")
            """
        )
    )
    (package / "__main__.py").write_text(
        textwrap.dedent(
            """
            import gc, json, os, sys, time
            import forkdemo

            def main():
                mode = os.environ.get("DEMO_MODE", "report")
                if mode.startswith("exit:"):
                    print("exiting as asked", flush=True)
                    sys.exit(int(mode.split(":")[1]))
                print("serving", flush=True)  # before the report: the test reads both
                facts = {
                    "pid": os.getpid(),
                    "sid": os.getsid(0),
                    "cwd": os.getcwd(),
                    "env": dict(os.environ),
                    "argv": sys.argv,
                    "gc_enabled": gc.isenabled(),
                    "gc_frozen": gc.get_freeze_count(),
                    "modules": {m: m in sys.modules for m in ("forkdemo", "forkslow")},
                }
                with open(os.environ["DEMO_REPORT"] + ".part", "w") as report:
                    json.dump(facts, report)
                os.rename(os.environ["DEMO_REPORT"] + ".part", os.environ["DEMO_REPORT"])
                time.sleep(120)
            """
        )
    )
    broken = tmp_path / "code" / "forkbroken"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('this service can not be imported')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "code"))
    monkeypatch.setenv("FORK_SERVER_ONLY", "the fork server's own environment")
    return package


@pytest.fixture
def server(tmp_path: Path, demo: Path) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path / "logs", ["forkdemo", "forkbroken"], start_timeout=60)
    with server:
        yield server


def wait_for(path: Path, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} was not written within {timeout}s"
        time.sleep(0.05)
    facts: dict[str, object] = json.loads(path.read_text())
    return facts


def spawn(server: ForkServer, tmp_path: Path, name: str, **env: str) -> ForkedProcess:
    work = tmp_path / name
    work.mkdir()
    return server.spawn(
        "forkdemo",
        {"PYTHONPATH": os.environ["PYTHONPATH"], "DEMO_REPORT": str(work / "report.json"), **env},
        cwd=work,
        log=tmp_path / f"{name}.log",
    )


def test_a_child_runs_the_service_in_its_own_session_with_exactly_its_environment(
    server: ForkServer, tmp_path: Path, demo: Path
) -> None:
    child = spawn(server, tmp_path, "one")
    try:
        facts = wait_for(tmp_path / "one" / "report.json")
        assert facts["pid"] == child.pid
        assert facts["sid"] == child.pid  # a session of its own, like start_new_session
        assert facts["cwd"] == str(tmp_path / "one")
        env = facts["env"]
        assert isinstance(env, dict)
        assert env["DEMO_REPORT"] == str(tmp_path / "one" / "report.json")
        assert "FORK_SERVER_ONLY" not in env  # the request's environment, nothing else
        assert facts["argv"] == ["forkdemo"]
        # The fork server's objects are out of the child's collections (they stay shared
        # pages instead of being written to by each child's GC); the child's own are not.
        assert facts["gc_enabled"] is True
        assert isinstance(facts["gc_frozen"], int)
        assert facts["gc_frozen"] > 10_000
        assert child.poll() is None
        # Imported once, by the fork server, before the child was forked.
        importers = (demo / "imports.log").read_text().split()
        assert importers == [str(server.pid)]
        assert "serving" in (tmp_path / "one.log").read_text()
        # `ps` shows what `python -m` would have run.
        assert Path(f"/proc/{child.pid}/cmdline").read_bytes().replace(b"\0", b" ").split() == [
            sys.executable.encode(),
            b"-m",
            b"forkdemo",
        ]
    finally:
        child.kill()
    assert child.wait(timeout=10) == -signal.SIGKILL


def test_exit_codes_and_signals_are_reported_like_popen(server: ForkServer, tmp_path: Path) -> None:
    exits = spawn(server, tmp_path, "exits", DEMO_MODE="exit:3")
    assert exits.wait(timeout=20) == 3
    assert "exiting as asked" in (tmp_path / "exits.log").read_text()

    runs = spawn(server, tmp_path, "runs")
    wait_for(tmp_path / "runs" / "report.json")
    with pytest.raises(Exception, match="timed out"):
        runs.wait(timeout=0.2)
    runs.send_signal(signal.SIGTERM)
    assert runs.wait(timeout=10) == -signal.SIGTERM
    assert describe_exit(runs.returncode) == "killed by SIGTERM"
    runs.kill()  # signalling an ended child is harmless (its pidfd, not a reused PID)
    assert runs.poll() == -signal.SIGTERM


def test_a_module_that_can_not_be_imported_fails_in_its_own_log(
    server: ForkServer, tmp_path: Path
) -> None:
    assert "could not import forkbroken" in server.log_path.read_text()
    child = server.spawn("forkbroken", dict(os.environ), cwd=tmp_path, log=tmp_path / "b.log")
    assert child.wait(timeout=20) == 1
    assert "this service can not be imported" in (tmp_path / "b.log").read_text()


def test_children_outlive_a_killed_fork_server_and_it_comes_back(
    server: ForkServer, tmp_path: Path
) -> None:
    child = spawn(server, tmp_path, "survivor")
    wait_for(tmp_path / "survivor" / "report.json")
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not server.exited:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(ForkServerError):
        spawn(server, tmp_path, "refused")
    time.sleep(0.5)
    assert child.poll() is None  # still serving without its fork server
    child.kill()
    assert child.wait(timeout=10) == UNKNOWN_EXIT  # nobody left to say how it ended
    assert "fork server had died" in describe_exit(child.returncode)
    server.start()  # what the supervisor does
    again = spawn(server, tmp_path, "again")
    wait_for(tmp_path / "again" / "report.json")
    again.terminate()
    assert again.wait(timeout=10) == -signal.SIGTERM


def test_children_stop_when_their_supervisor_is_gone(server: ForkServer, tmp_path: Path) -> None:
    """The lifeline: when the supervisor's end of it closes (here: `stop()`; a killed
    supervisor's kernel closes it the same way) every child stops itself."""
    child = spawn(server, tmp_path, "orphan")
    facts = wait_for(tmp_path / "orphan" / "report.json")
    server.stop()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{facts['pid']}").exists() and child.poll() is None:
        assert time.monotonic() < deadline, "the child outlived its supervisor's lifeline"
        time.sleep(0.05)


def _blocked_until(tmp_path: Path, name: str, release: Path) -> None:
    """A package `name` whose import waits until `release` exists."""
    package = tmp_path / "code" / name
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            deadline = time.monotonic() + 60
            while not Path({str(release)!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            """
        )
    )
    (package / "__main__.py").write_text("def main():\n    pass\n")


def test_a_service_is_forked_as_soon_as_its_own_module_is_imported(
    tmp_path: Path, demo: Path
) -> None:
    """The fork server imports its modules in turn and answers between two: a service whose
    module is imported is forked before the next modules are (`imagetron up` starts the first
    services while the fork server imports the last)."""
    gate, last = tmp_path / "gate", tmp_path / "last"
    _blocked_until(tmp_path, "forkgate", gate)
    _blocked_until(tmp_path, "forkslow", last)
    server = ForkServer(tmp_path / "logs", ["forkdemo", "forkgate", "forkslow"], start_timeout=60)
    starting = threading.Thread(target=server.start)
    starting.start()
    try:
        assert server.wait_for("forkdemo", timeout=20)
        assert not server.has_imported("forkgate")
        assert not server.wait_for("forkslow", timeout=0.1)
        with pytest.raises(ForkServerError, match="has not imported forkslow"):
            server.spawn("forkslow", {}, cwd=tmp_path, log=tmp_path / "slow.log")

        forked: list[ForkedProcess] = []
        asking = threading.Thread(target=lambda: forked.append(spawn(server, tmp_path, "early")))
        asking.start()  # answered once forkgate's import ends, before forkslow's begins
        # Only once the request is on its way: one written after forkgate's import ended
        # would be read after forkslow's, which waits for this test (a clean CI run did so).
        deadline = time.monotonic() + 10
        while not server._pending:  # registered, then written, under the state lock
            assert time.monotonic() < deadline, "the spawn request was never sent"
            time.sleep(0.01)
        with server._state:
            pass
        gate.touch()
        asking.join(20)
        facts = wait_for(tmp_path / "early" / "report.json")
        assert facts["pid"] == forked[0].pid
        assert facts["modules"] == {"forkdemo": True, "forkslow": False}
        assert not server.is_ready()  # still importing forkslow

        last.touch()
        assert server.wait_for("forkslow", timeout=20)
        starting.join(20)
        assert server.is_ready()
        forked[0].kill()
        assert forked[0].wait(timeout=10) == -signal.SIGKILL
    finally:
        gate.touch()
        last.touch()
        starting.join(30)
        server.stop()


def test_waiting_for_a_module_ends_when_the_fork_server_does(tmp_path: Path, demo: Path) -> None:
    (tmp_path / "code" / "forkstuck").mkdir()
    (tmp_path / "code" / "forkstuck" / "__init__.py").write_text("import time\ntime.sleep(60)\n")
    server = ForkServer(tmp_path / "logs", ["forkdemo", "forkstuck"], start_timeout=60)

    def start() -> None:
        with contextlib.suppress(ServerError):  # it is killed while it starts
            server.start()

    starting = threading.Thread(target=start)
    starting.start()
    try:
        assert server.wait_for("forkdemo", timeout=20)
        waited = time.monotonic()
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # dies before it has imported forkstuck
        assert not server.wait_for("forkstuck", timeout=30)
        assert time.monotonic() - waited < 10  # told, not timed out
        assert not server.has_imported("forkdemo")
    finally:
        server.stop()
        starting.join(30)
