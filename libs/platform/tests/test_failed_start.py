"""A service whose start-up fails exits at once with a non-zero status (uvicorn's 3), having
stopped what it had started, so that its supervisor restarts it promptly: served by the real
`serve()` in a process of its own (and forked by the fork server, as `imagetron up` runs
services), against a real NATS.

A chaos run's restarted images replica had its start fail (a consumer's `consumer_info`
timed out while FastStream started its subscribers) and went on consuming and answering
for two minutes: the broker, whose start had failed half-way, was never stopped, and
`asyncio.run` waited for ever for tasks that did not end when cancelled (FastStream's pull
loops carry on while their subscriber runs) while it ran all the others."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from faststream.nats import JStream, NatsBroker, PullSub

from imagetron.servers import forkserver
from imagetron.servers.forkserver import ForkServer
from imagetron.servers.ports import free_port
from imagetron_platform import lifecycle as lifecycle_module
from imagetron_platform.lifecycle import ServiceLifecycle

pytestmark = pytest.mark.integration

#: Start (imports, connecting) plus the bounded stop of a task that ignores its cancellation
#: (`STOP_STEP_SECONDS`, then `LEFTOVER_SECONDS`), with room for a loaded machine.
EXIT_WITHIN = 25.0

SERVICE = """
import asyncio, contextlib, os, threading, time
from faststream.nats import JStream, NatsBroker, PullSub
from imagetron_platform import lifecycle as lifecycle_module
from imagetron_platform.lifecycle import ServiceLifecycle
from imagetron_platform.serve import serve
from imagetron_platform.settings import ServiceSettings

FAIL_AT = os.environ["FAIL_AT"]


def main():
    broker = NatsBroker(os.environ["NATS_URL"], max_reconnect_attempts=1)
    stream = JStream("FAILSVC", subjects=["failsvc.>"])

    @broker.subscriber("failsvc.work", stream=stream, durable="work", pull_sub=PullSub(1, 1.0))
    async def work(body: str) -> None:
        print("handled", body, flush=True)

    if FAIL_AT == "subscriber":  # its stream does not exist: the broker's start fails half-way
        @broker.subscriber("gone.work", stream=JStream("GONE", declare=False), durable="gone")
        async def gone(body: str) -> None: ...

    lifecycle = ServiceLifecycle("failsvc", broker)

    async def failing_hook():
        raise RuntimeError("the migration failed")

    if FAIL_AT == "hook":
        lifecycle.before_connect(failing_hook)

    async def stubborn():
        # Like FastStream's pull loop while its subscriber runs, when its cancellation is
        # lost (Python 3.11's `wait_for`, in nats-py's `next_msg`, returns a message that
        # arrives as it is cancelled): it carries on.
        while True:
            try:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                print("cancellation ignored", flush=True)

    if FAIL_AT == "state":
        lifecycle.background("stubborn", stubborn)

    @contextlib.asynccontextmanager
    async def state():
        if FAIL_AT == "thread":  # one the interpreter would join at exit for an hour
            threading.Thread(target=time.sleep, args=(3600,), name="blocking-call").start()
        await asyncio.sleep(0.5)  # the loop and the subscribers run meanwhile
        raise RuntimeError("the service's state failed")
        yield {}

    app = lifecycle.app(title="failsvc", state=state)
    serve(app, ServiceSettings(http_port=int(os.environ["HTTP_PORT"]), log_json=False))
"""


@pytest.fixture
def failsvc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The `failsvc` package: a service whose start fails where `FAIL_AT` says."""
    code = tmp_path / "code"
    (code / "failsvc").mkdir(parents=True)
    (code / "failsvc" / "__init__.py").write_text("")
    (code / "failsvc" / "__main__.py").write_text(
        textwrap.dedent(SERVICE) + "\n\nif __name__ == '__main__':\n    main()\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]))
    return code


def service_env(nats_url: str, fail_at: str) -> dict[str, str]:
    return {
        **os.environ,
        "NATS_URL": nats_url,
        "FAIL_AT": fail_at,
        "HTTP_PORT": str(free_port()),
    }


def run_until_exit(argv: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"still running {EXIT_WITHIN:g} s after its start:\n{log.read_text()}")
    return code, time.monotonic() - started


@pytest.mark.parametrize("fail_at", ["state", "thread", "subscriber", "hook", "nats"])
def test_a_service_whose_start_fails_exits_at_once_with_a_failure_status(
    failsvc: Path, tmp_path: Path, nats_url: str, fail_at: str
) -> None:
    url = "nats://127.0.0.1:1" if fail_at == "nats" else nats_url
    log = tmp_path / "failsvc.log"
    code, seconds = run_until_exit(
        [sys.executable, "-m", "failsvc"], service_env(url, fail_at), log
    )
    output = log.read_text()
    assert code == 3, output
    if fail_at == "thread":
        assert "(threads: blocking-call); exiting now" in output
    assert "Application startup failed. Exiting." in output
    assert "handled" not in output
    print(f"{fail_at}: exited {code} after {seconds:.1f} s")


@pytest.mark.skipif(not forkserver.supported(), reason="the fork server is Linux-only")
def test_a_forked_service_whose_start_fails_exits_at_once(
    failsvc: Path, tmp_path: Path, nats_url: str
) -> None:
    with ForkServer(tmp_path / "logs", ["failsvc"], start_timeout=60) as server:
        assert server.wait_for("failsvc", timeout=60)
        log = tmp_path / "forked.log"
        started = time.monotonic()
        child = server.spawn("failsvc", service_env(nats_url, "state"), cwd=tmp_path, log=log)
        try:
            code = child.wait(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            child.kill()
            pytest.fail(f"still running {EXIT_WITHIN:g} s after its fork:\n{log.read_text()}")
        assert code == 3, log.read_text()
        print(f"forked: exited {code} after {time.monotonic() - started:.1f} s")


async def test_a_broker_whose_start_fails_half_way_is_stopped(nats_url: str) -> None:
    """The subscribers started before the one that failed stop consuming, and the
    connection closes, before the error goes on."""
    broker = NatsBroker(nats_url)
    started = broker.subscriber(
        "halfway.work",
        stream=JStream("HALFWAY", subjects=["halfway.>"]),
        durable="work",
        pull_sub=PullSub(1, 1.0),
    )
    started(_ignore)
    failing = broker.subscriber(
        "gone.work", stream=JStream("GONE", declare=False), durable="gone", pull_sub=PullSub(1, 1.0)
    )
    failing(_ignore)
    lifecycle = ServiceLifecycle("halfway", broker)
    with pytest.raises(Exception, match="stream not found"):
        async with lifecycle.running():
            pytest.fail("the service must not run")
    assert not started.running
    assert not await broker.ping(timeout=0.5)
    await asyncio.sleep(0)


async def test_a_start_gives_up_on_an_unreachable_nats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service's broker reconnects for ever (`make_broker`), and nats-py then tries
    its first connection for ever too: the start fails after `NATS_WAIT_SECONDS`."""
    monkeypatch.setattr(lifecycle_module, "NATS_WAIT_SECONDS", 0.5)
    broker = NatsBroker("nats://127.0.0.1:1", max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionError, match=r"NATS did not answer within 0\.5 s"):
            async with ServiceLifecycle("unreachable", broker).running():
                pytest.fail("the service must not run")


async def _ignore(body: str) -> None:
    del body
