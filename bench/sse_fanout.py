"""How many browsers one notifier holds, how fast events reach them, and the same through
the gateway (the embedded stack's only origin).

    uv run python bench/sse_fanout.py [--clients 10000] [--owners 1000] [--rate 200]

Direct: a real NATS server and one notifier process (`python -m imagetron_notifier`) on
127.0.0.1. Through the gateway: the embedded stack, one user (with an API key) per owner.
Either way it opens N SSE connections (raw sockets, so the client side stays cheap; `tabs`
per owner), publishes events to the EVENTS stream at a steady rate while all are connected,
and measures: connections accepted (and refused, with how fast the refusal came), deliveries,
the delay from publish to client (p50/p99), and the resident memory of the notifier (and the
gateway). Bounded: it stops after the events are delivered or `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from common import (
    Figure,
    at_least,
    at_most,
    bench_stack,
    collector_paused,
    cores_busy,
    machine,
    pct,
    process_cpu_seconds,
    raise_open_file_limit,
    ratio_at_most,
    rss_mib,
    table,
)

from imagetron.servers import LOCALHOST, NatsServer, free_port
from imagetron.servers.process import make_preexec
from imagetron.stack import EmbeddedStack
from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_platform.events_tokens import issue_events_token
from imagetron_platform.nats_connection import provision_streams

NAME = "SSE fan-out"
SECRET = "bench-secret"


@dataclass(frozen=True)
class Size:
    clients: int = 10_000
    owners: int = 1_000
    events_per_owner: int = 10
    rate: float = 200.0
    timeout: float = 180.0
    #: After the last connection, before publishing: the hub registers the last ones.
    settle: float = 1.0


SMALL = Size(clients=100, owners=10, events_per_owner=3, rate=100.0, timeout=30.0, settle=0.2)


@dataclass
class Results:
    connected: int = 0
    refused: int = 0
    refusals: dict[int, int] = field(default_factory=dict)
    refusal_seconds: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    delivered: int = 0
    #: Connections a tab tried again (failed, or unanswered for ANSWER_SECONDS).
    retried: int = 0


#: A tab that has no answer this long after connecting (its connection lost in a full
#: accept queue: the kernel dropped the handshake's last packet) tries again, as a
#: browser's EventSource does after an error.
ANSWER_SECONDS = 10.0
#: EventSource's default wait before it reconnects (our streams ask for the same).
RECONNECT_SECONDS = 3.0


async def _open(
    port: int, path: str, auth: str
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | int:
    """One attempt: the stream's connection once answered 200, else the status (0: no
    connection, or no answer within ANSWER_SECONDS)."""
    try:
        reader, writer = await asyncio.open_connection(LOCALHOST, port, limit=1 << 20)
    except OSError:
        return 0
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {LOCALHOST}\r\n{auth}"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), ANSWER_SECONDS)
        status = int(status_line.split()[1]) if status_line else 0
    except (OSError, ValueError, IndexError, TimeoutError):
        status = 0
    if status == 200:
        return status, reader, writer
    writer.close()
    return status


async def client(
    port: int, path: str, auth: str, results: Results, expected: int, deadline: float
) -> None:
    """One browser tab: connects (again after a connection that failed or went unanswered,
    until `deadline`), then reads `expected` events (each carries when it was published)."""
    started = time.perf_counter()
    while isinstance(opened := await _open(port, path, auth), int):
        if opened != 0 or time.perf_counter() + RECONNECT_SECONDS > deadline:
            results.refused += 1
            results.refusals[opened] = results.refusals.get(opened, 0) + 1
            results.refusal_seconds.append(time.perf_counter() - started)
            return
        results.retried += 1
        await asyncio.sleep(RECONNECT_SECONDS)
    _, reader, writer = opened
    try:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        results.connected += 1
        got = 0
        while got < expected:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                sent = json.loads(line[6:])["sent"]
                results.latencies.append(time.time() - sent)
                results.delivered += 1
                got += 1
    except (OSError, ValueError, IndexError):
        return
    finally:
        writer.close()


@dataclass(frozen=True)
class Target:
    """Where the tabs connect: a port, the path, and each owner's credential header."""

    port: int
    path: str
    headers: dict[uuid.UUID, str]
    #: Processes whose memory is reported (name → pid).
    processes: dict[str, int]


async def fan_out(
    connect: dict[str, Any], target: Target, size: Size
) -> tuple[Results, dict[str, float], float, float, str]:
    """Connect every tab, publish, collect. Returns the results, peak RSS per process
    (MiB), the connect time, the publish rate achieved and the cores each process (the
    clients too) kept busy while the events were published and delivered."""
    owners = list(target.headers)
    per_owner = size.clients // len(owners)
    results = Results()
    peaks: dict[str, float] = {name: 0.0 for name in target.processes}

    def measure_memory() -> None:
        for name, pid in target.processes.items():
            peaks[name] = max(peaks[name], rss_mib(pid) or 0.0)

    nc = await nats.connect(**connect)
    js = nc.jetstream()
    tasks: list[asyncio.Task[None]] = []
    try:
        started = time.perf_counter()
        expected = size.events_per_owner
        deadline = started + size.timeout
        for i in range(per_owner * len(owners)):
            owner = owners[i % len(owners)]
            auth = target.headers[owner]
            tasks.append(
                asyncio.create_task(
                    client(target.port, target.path, auth, results, expected, deadline)
                )
            )
            if i % 200 == 199:
                await asyncio.sleep(0.05)  # don't overrun the listen backlog
        while results.connected + results.refused < len(tasks):
            measure_memory()
            if time.perf_counter() - started > size.timeout:
                break
            await asyncio.sleep(0.1)
        connect_seconds = time.perf_counter() - started
        await asyncio.sleep(size.settle)  # the last connections register with the hub
        measure_memory()
        interval = 1.0 / size.rate
        with collector_paused():  # while deliveries are timed
            cpu_before = process_cpu_seconds(target.processes)
            publish_start = time.perf_counter()
            published = 0
            for n in range(size.events_per_owner):
                for owner in owners:
                    body = json.dumps(
                        {
                            "id": str(uuid.uuid4()),
                            "type": "task.progress",
                            "owner_id": str(owner),
                            "n": n,
                            "sent": time.time(),
                            "occurred_at": "2026-01-01T00:00:00+00:00",
                        }
                    ).encode()
                    await js.publish(
                        f"events.images.{owner}.task.progress", body, stream=EVENTS_STREAM.name
                    )
                    published += 1
                    delay = publish_start + published * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if published % 100 == 0:
                        measure_memory()
            publish_rate = published / (time.perf_counter() - publish_start)
            deadline = time.perf_counter() + size.timeout
            while results.delivered < results.connected * size.events_per_owner:
                measure_memory()
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.1)
            cpu_after = process_cpu_seconds(target.processes)
            busy = cores_busy(cpu_before, cpu_after, time.perf_counter() - publish_start)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
    return results, peaks, connect_seconds, publish_rate, busy


@contextlib.contextmanager
def notifier_alone(root: Path, max_connections: int) -> Iterator[tuple[str, int, dict[str, int]]]:
    """A NATS server and one notifier process; yields (NATS URL, the notifier's port, the
    pids of both by name)."""
    nats_server = NatsServer(root / "nats").start()
    port = free_port()
    env = {
        **os.environ,
        "IMAGETRON_NATS_URL": nats_server.url,
        "IMAGETRON_HTTP_PORT": str(port),
        "IMAGETRON_EVENTS_TOKEN_SECRET": SECRET,
        "IMAGETRON_MAX_CONNECTIONS": str(max_connections),
        "IMAGETRON_LOG_LEVEL": "WARNING",
    }
    notifier: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(_provision(nats_server.url))  # the notifier follows the EVENTS stream
        with open(root / "notifier.log", "wb") as log:
            notifier = subprocess.Popen(
                [sys.executable, "-m", "imagetron_notifier"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=make_preexec(signal.SIGTERM),  # ends with the benchmark
            )
        deadline = time.monotonic() + 30
        while not _answers(port):
            if notifier.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the notifier did not start; see {root / 'notifier.log'}")
            time.sleep(0.05)
        assert nats_server.pid is not None
        yield nats_server.url, port, {"notifier": notifier.pid, "nats": nats_server.pid}
    finally:
        if notifier is not None:
            notifier.terminate()
            try:
                notifier.wait(15)
            except subprocess.TimeoutExpired:
                notifier.kill()
        nats_server.stop()


async def _provision(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await provision_streams(nc.jetstream())
    finally:
        await nc.close()


def _answers(port: int) -> bool:
    try:
        with httpx.Client(timeout=1) as c:
            return c.get(f"http://{LOCALHOST}:{port}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _figures(
    where: str, size: Size, results: Results, publish_rate: float
) -> tuple[list[Figure], float | None]:
    p99 = pct(results.latencies, 0.99)
    p99_ms = None if p99 is None else p99 * 1000
    refused = ""
    if results.refused:
        fastest = pct(results.refusal_seconds, 0.99)
        refused = f", {results.refused} refused {results.refusals}" + (
            f" within {fastest * 1000:.0f} ms" if fastest is not None else ""
        )
    wanted = results.connected * size.events_per_owner
    retried = f", {results.retried} connections tried again" if results.retried else ""
    note = (
        f"{size.clients // size.owners} tabs x {size.owners} owners{refused}{retried}; "
        f"{results.delivered}/{wanted} events delivered at {publish_rate:.0f}/s"
    )
    figures = [
        Figure(
            NAME,
            f"clients connected, {where}",
            results.connected,
            "",
            better="higher",
            target=f"{size.clients:,}",
            check=at_least(size.clients),
            note=note,
        )
    ]
    return figures, p99_ms


async def direct(nats_url: str, port: int, pids: dict[str, int], size: Size) -> list[Figure]:
    owners = [uuid.uuid4() for _ in range(size.owners)]
    headers = {
        owner: f"Authorization: Bearer {issue_events_token(SECRET, owner, 3600)[0]}\r\n"
        for owner in owners
    }
    target = Target(port, "/events", headers, pids)
    results, peaks, _, publish_rate, busy = await fan_out({"servers": nats_url}, target, size)
    figures, p99 = _figures("one notifier", size, results, publish_rate)
    figures += [
        Figure(
            NAME,
            f"delivery p99, one notifier ({size.rate:.0f} events/s)",
            p99,
            "ms",
            target="≤ 250 ms",
            check=at_most(250),
            note=f"p50 {_ms(pct(results.latencies, 0.5))}; {busy}",
        ),
        Figure(
            NAME,
            "notifier RSS, all connected",
            peaks["notifier"],
            "MiB",
            target="≤ 300 MiB",
            check=at_most(300),
        ),
    ]
    return figures


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms"


async def through_gateway(
    stack: EmbeddedStack, size: Size, direct_p99: float | None
) -> list[Figure]:
    """The same through the embedded stack's gateway: one user per owner."""
    admin = {"Authorization": f"Bearer {stack.admin_api_key}"}
    headers: dict[uuid.UUID, str] = {}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=admin, timeout=30) as api:
        semaphore = asyncio.Semaphore(16)

        async def user(i: int) -> None:
            async with semaphore:
                made = (await api.post("/api/v1/users", json={"name": f"fan-{i}"})).json()
            headers[uuid.UUID(made["user"]["id"])] = f"Authorization: Bearer {made['api_key']}\r\n"

        await asyncio.gather(*(user(i) for i in range(size.owners)))
    processes = {
        name: pid
        for name, process in stack.processes()
        if name in ("notifier", "gateway", "nats") and (pid := process.pid) is not None
    }
    target = Target(stack.ports.gateway, "/api/v1/events", headers, processes)
    results, peaks, _, publish_rate, busy = await fan_out(
        stack.nats_connect_options(), target, size
    )
    figures, p99 = _figures("through the gateway", size, results, publish_rate)
    figures += [
        Figure(
            NAME,
            "delivery p99, through the gateway",
            p99,
            "ms",
            target="≤ 2 x direct",
            check=ratio_at_most(2.0),
            reference=direct_p99,
            reference_name="one notifier, direct",
            note=f"p50 {_ms(pct(results.latencies, 0.5))}; {busy}",
        ),
        Figure(
            NAME,
            "gateway RSS, all connected",
            peaks.get("gateway"),
            "MiB",
            note=f"notifier {peaks.get('notifier', 0):.0f} MiB",
        ),
    ]
    return figures


def run_direct(size: Size) -> list[Figure]:
    with (
        tempfile.TemporaryDirectory(prefix="imagetron-bench-") as root,
        notifier_alone(Path(root), size.clients * 2) as (url, port, pids),
    ):
        return asyncio.run(asyncio.wait_for(direct(url, port, pids, size), size.timeout * 3))


def direct_p99(figures: list[Figure]) -> float | None:
    return next((f.value for f in figures if f.name.startswith("delivery p99, one")), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=Size.clients)
    parser.add_argument("--owners", type=int, default=Size.owners)
    parser.add_argument("--events-per-owner", type=int, default=Size.events_per_owner)
    parser.add_argument("--rate", type=float, default=Size.rate, help="events per second")
    parser.add_argument("--timeout", type=float, default=Size.timeout)
    parser.add_argument("--direct-only", action="store_true")
    args = parser.parse_args()
    size = Size(args.clients, args.owners, args.events_per_owner, args.rate, args.timeout)
    raise_open_file_limit()  # before any server starts: they inherit it
    figures = run_direct(size)
    if not args.direct_only:
        with (
            tempfile.TemporaryDirectory(prefix="imagetron-bench-") as root,
            bench_stack(root) as stack,
        ):
            figures += asyncio.run(through_gateway(stack, size, direct_p99(figures)))
    print(machine())
    print(table(figures))


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    main()
