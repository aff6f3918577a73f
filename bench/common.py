"""What every benchmark shares: figures and their targets, the table `make bench` prints, the
machine it ran on, a raw HTTP/1.1 client, the bare references (a FastAPI endpoint and NATS
JetStream, measured in the same run) and the embedded stack benchmarks run against.

A figure's `reference` is what the same measurement gives on a bare component with the same
client on the same cores in the same run: this machine is shared and noisy, so the ratio to
it says more than the absolute value."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import psutil
from nats.js.api import StreamConfig

from imagetron.servers import LOCALHOST, free_port
from imagetron.servers.process import make_preexec
from imagetron.stack import EmbeddedStack, StackPorts

BENCH_DIR = Path(__file__).parent

#: The embedded stack's settings for benchmarks: the limits that protect a real deployment
#: from one user (rate limits, daily budgets, provider slots) are not what is measured, and
#: the sandbox answers at once (no pending time, no progress steps) with 512-pixel grids.
BENCH_ENV = {
    "IMAGETRON_RATE_LIMIT_PER_KEY": "10000000",
    "IMAGETRON_RATE_LIMIT_PER_ADDRESS": "10000000",
    "IMAGETRON_LLM_CALLS_PER_DAY": "1000000",
    "IMAGETRON_GENERATIONS_PER_DAY": "1000000",
    "IMAGETRON_MAX_IN_FLIGHT_PER_PROVIDER": "10000",
    "IMAGETRON_SANDBOX_PENDING_MS": "0",
    "IMAGETRON_SANDBOX_PROGRESS_STEPS": "[]",
    "IMAGETRON_SANDBOX_PROGRESS_INTERVAL_MS": "0",
    "IMAGETRON_SANDBOX_GRID_LONG_SIDE": "512",
    "IMAGETRON_SANDBOX_UPSCALE_LONG_SIDE": "1024",
}


def pct(values: list[float], p: float) -> float | None:
    """The p-quantile (0..1) of `values`, None without any."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def load() -> float:
    return os.getloadavg()[0]


@dataclass
class Figure:
    """One measured figure. `ratio` is value / reference; `better` says which way is good
    ("higher" for rates, "lower" for times and memory); `target` is checked by `check`."""

    benchmark: str
    name: str
    value: float | None
    unit: str
    better: str = "lower"
    target: str = ""
    check: Callable[[Figure], bool] | None = None
    reference: float | None = None
    reference_name: str = ""
    note: str = ""
    load: float = field(default_factory=load)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def met(self) -> bool | None:
        if self.check is None or self.value is None:
            return None
        return self.check(self)


def at_most(limit: float) -> Callable[[Figure], bool]:
    return lambda f: f.value is not None and f.value <= limit


def at_least(limit: float) -> Callable[[Figure], bool]:
    return lambda f: f.value is not None and f.value >= limit


def ratio_at_least(limit: float) -> Callable[[Figure], bool]:
    return lambda f: f.ratio is not None and f.ratio >= limit


def ratio_at_most(limit: float) -> Callable[[Figure], bool]:
    return lambda f: f.ratio is not None and f.ratio <= limit


def both(*checks: Callable[[Figure], bool]) -> Callable[[Figure], bool]:
    return lambda f: all(c(f) for c in checks)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table (what `make bench` prints and docs record)."""
    rows = [
        "| benchmark | figure | measured | target | met | bare reference | ratio | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: ""}[f.met]
        reference = (
            f"{_number(f.reference, f.unit)} ({f.reference_name})"
            if f.reference is not None
            else ""
        )
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else ""
        measured = _number(f.value, f.unit) + (f" — {f.note}" if f.note else "")
        rows.append(
            f"| {f.benchmark} | {f.name} | {measured} | {f.target} | {met} | {reference} "
            f"| {ratio} | {f.load:.2f} |"
        )
    return "\n".join(rows)


#: What one gateway relaying 10,000 event streams may need: a descriptor for each, one for
#: each stream from the notifier they share (one per owner in the benchmark, one per tab if
#: no two tabs wanted the same events), and the rest.
OPEN_FILES = 32_768


@functools.cache
def raise_open_file_limit() -> str:
    """Raises this process's open-file limit, which the stack it starts inherits, to
    OPEN_FILES where the system allows it, as an operator would for a gateway that relays
    10,000 streams (`ulimit -n`, systemd's LimitNOFILE, docker's `--ulimit nofile`). Says
    what the limit is and how it came about: raising the hard limit takes the privilege to
    (root here); without it the limit stays, and the gateway holds fewer streams. Once per
    process: later calls say what the first one did."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= OPEN_FILES:
        return f"open-file limit {soft:,}"
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, max(hard, OPEN_FILES)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return f"open-file limit {hard:,} (the hard limit; could not raise it to {OPEN_FILES:,})"
    return f"open-file limit raised to {OPEN_FILES:,} (from {soft:,}, hard {hard:,})"


def machine() -> str:
    """The machine the figures come from, in one line."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    loads = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} x {model}, {memory:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; the benchmark clients run "
        f"on the same cores; {raise_open_file_limit()}; load average {loads} (1, 5, 15 min) "
        "at the end"
    )


# -- a raw HTTP/1.1 client: an httpx client saturates a core before the gateway does


@dataclass
class LoadResult:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self, status: int = 200) -> int:
        return self.statuses.get(status, 0)

    @property
    def rate(self) -> float:
        return self.ok() / self.seconds if self.seconds else 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def http_post(path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {LOCALHOST}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The benchmark's own garbage collector off while it times, as `timeit` does: a full
    collection of the client's heap (106 ms during a webhook run, up to 300 ms holding
    10,000 connections, gc callbacks) would be counted as the stack's latency, for every
    request in flight meanwhile. What is freed by reference counting still is."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def post_load(
    port: int,
    requests: list[bytes],
    concurrency: int,
    *,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """Send `requests` over `concurrency` keep-alive connections, as fast as they are
    answered (or `rate` per second), until all are sent or `stop` is set."""
    result = LoadResult()
    pending = iter(requests)
    started = time.perf_counter()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(LOCALHOST, port)
        try:
            for request in pending:
                if stop is not None and stop.is_set():
                    return
                if rate is not None:
                    due = started + result.sent / rate
                    result.sent += 1
                    if (wait := due - time.perf_counter()) > 0:
                        await asyncio.sleep(wait)
                else:
                    result.sent += 1
                sent = time.perf_counter()
                status = await _exchange(reader, writer, request)
                result.latencies.append(time.perf_counter() - sent)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    with collector_paused():
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


# -- the bare references


@contextlib.contextmanager
def bare_fastapi() -> Iterator[int]:
    """A bare FastAPI endpoint (`bare_fastapi.py`) in its own uvicorn process, served as
    our services are; yields its port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "bare_fastapi.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=make_preexec(signal.SIGTERM),  # ends with the benchmark, however it ends
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection((LOCALHOST, port), 0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare FastAPI reference did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class NatsReference:
    #: JetStream publishes acknowledged per second, `concurrency` awaiting their ack at once.
    publish_rate: float
    #: One publish to its ack, one at a time (seconds).
    publish_p50: float
    publish_p99: float
    #: Publish to delivery by a push consumer, one hop through a stream (seconds).
    delivery_p50: float
    delivery_p99: float


async def bare_nats(
    connect: dict[str, Any], publishes: int, concurrency: int, deliveries: int
) -> NatsReference:
    """What NATS JetStream alone does on this machine: a file-backed stream like WEBHOOKS
    and EVENTS, published to from one client (as the gateway and the outbox relays do).
    `connect`: `nats.connect` arguments (the stack's admin user)."""
    nc = await nats.connect(**connect)
    js = nc.jetstream()
    stream = f"BENCH_{uuid.uuid4().hex[:8]}"
    subject = f"bench.{stream}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.>"]))
    try:
        body = json.dumps({"data": "x" * 300}).encode()
        remaining = iter(range(publishes))

        async def publisher() -> None:
            for i in remaining:
                await js.publish(f"{subject}.rate", body, headers={"Nats-Msg-Id": str(i)})

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        rate = publishes / (time.perf_counter() - started)

        received: asyncio.Queue[float] = asyncio.Queue()

        async def on_message(msg: nats.aio.msg.Msg) -> None:
            received.put_nowait(time.perf_counter())

        sub = await js.subscribe(f"{subject}.hop", cb=on_message, ordered_consumer=True)
        acks, hops = [], []
        for _ in range(deliveries):
            sent = time.perf_counter()
            await js.publish(f"{subject}.hop", body)
            acks.append(time.perf_counter() - sent)
            hops.append(await asyncio.wait_for(received.get(), 5) - sent)
            await asyncio.sleep(0.005)
        await sub.unsubscribe()
        return NatsReference(
            publish_rate=rate,
            publish_p50=pct(acks, 0.5) or 0.0,
            publish_p99=pct(acks, 0.99) or 0.0,
            delivery_p50=pct(hops, 0.5) or 0.0,
            delivery_p99=pct(hops, 0.99) or 0.0,
        )
    finally:
        await js.delete_stream(stream)
        await nc.close()


@contextlib.contextmanager
def bench_stack(
    root: Path | str, extra_env: dict[str, str] | None = None
) -> Iterator[EmbeddedStack]:
    """The embedded stack with `BENCH_ENV`, on free ports, started outside any event loop
    (it migrates with its own)."""
    with EmbeddedStack(
        root, StackPorts.free(), log_json=True, extra_env={**BENCH_ENV, **(extra_env or {})}
    ) as stack:
        yield stack


def stack_cpu_seconds(stack: EmbeddedStack) -> dict[str, float]:
    """CPU time (user + system) used so far by each process of the stack, its children
    included (PostgreSQL's backends), by name; each process counted once, under its own name
    (the services are children of the fork server, which is listed too)."""
    named = {process.pid: name for name, process in stack.processes() if process.pid is not None}
    used: dict[str, float] = {}
    for pid, name in named.items():
        try:
            tree = [psutil.Process(pid)]
        except psutil.Error:
            continue
        seconds = 0.0
        while tree:
            process = tree.pop()
            seconds += cpu_seconds(process.pid)
            with contextlib.suppress(psutil.Error):
                tree.extend(c for c in process.children() if c.pid not in named)
        used[name] = seconds
    return used


IMAGES_PER_TASK = 5  # a grid and its four versions


async def consumed(connect: dict[str, Any], stream: str, timeout: float) -> float:
    """Wait until every consumer of `stream` has nothing pending or unacknowledged (what an
    earlier benchmark left is handled); returns the seconds waited (at most `timeout`)."""
    started = time.perf_counter()
    nc = await nats.connect(**connect)
    try:
        js = nc.jetstream()
        while time.perf_counter() - started < timeout:
            consumers = await js.consumers_info(stream)
            if all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers):
                break
            await asyncio.sleep(0.2)
    finally:
        await nc.close()
    return time.perf_counter() - started


#: This process in CPU accounts: the benchmark's own clients, on the same cores as the stack.
CLIENTS = "benchmark clients"


def process_cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU time used so far by each named process, and by this one (`CLIENTS`)."""
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, CLIENTS: cpu_seconds(None)}


def cores_busy(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """How many cores each process kept busy between two `*_cpu_seconds` readings, busiest
    first, and in all: where a latency comes from when the machine is saturated."""
    busy = {name: (after[name] - before.get(name, 0.0)) / seconds for name in after}
    each = ", ".join(
        f"{name} {cores:.2f}" for name, cores in sorted(busy.items(), key=lambda kv: -kv[1])
    )
    return f"{sum(busy.values()):.2f} of {os.cpu_count()} cores busy ({each})"


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


def cpu_seconds(pid: int | None) -> float:
    """A process's CPU time (user + system) so far; this process's when `pid` is None."""
    try:
        times = (psutil.Process(pid) if pid is not None else psutil.Process()).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


@contextlib.asynccontextmanager
async def bounded(seconds: float) -> AsyncIterator[None]:
    """Every benchmark stops by itself: what runs past `seconds` is cancelled."""
    async with asyncio.timeout(seconds):
        yield


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None
