"""How many browsers one notifier process holds, and how fast events reach them.

    uv run python bench/sse_fanout.py --clients 5000 --owners 500 --events-per-owner 20

Starts a real NATS server and one notifier process (`python -m imagetron_notifier`) on
127.0.0.1, opens N SSE connections (raw sockets, so the client side stays cheap), publishes
events to the EVENTS stream at a steady rate while all are connected, and prints: connect
success, deliveries, delivery latency p50/p99/max from publish to client, and the notifier's
peak RSS. Bounded: it stops after the events are delivered or --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nats
import psutil

from imagetron.servers import LOCALHOST, NatsServer, free_port
from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_platform.events_tokens import issue_events_token
from imagetron_platform.messaging import provision_streams

SECRET = "bench-secret"


@dataclass
class Results:
    connected: int = 0
    refused: int = 0
    latencies: list[float] = field(default_factory=list)
    delivered: int = 0


async def client(port: int, owner: uuid.UUID, results: Results, expected: int) -> None:
    token, _ = issue_events_token(SECRET, owner, 3600)
    try:
        reader, writer = await asyncio.open_connection(LOCALHOST, port, limit=1 << 20)
    except OSError:
        results.refused += 1
        return
    writer.write(
        f"GET /events?token={token} HTTP/1.1\r\nHost: {LOCALHOST}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        results.refused += 1
        writer.close()
        return
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    results.connected += 1
    got = 0
    try:
        while got < expected:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                sent = json.loads(line[6:])["sent"]
                results.latencies.append(time.time() - sent)
                results.delivered += 1
                got += 1
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="imagetron-bench-"))
    nats_server = NatsServer(root / "nats").start()
    port = free_port()
    env = {
        **os.environ,
        "IMAGETRON_NATS_URL": nats_server.url,
        "IMAGETRON_HTTP_PORT": str(port),
        "IMAGETRON_EVENTS_TOKEN_SECRET": SECRET,
        "IMAGETRON_MAX_CONNECTIONS": str(args.clients * 2),
        "IMAGETRON_LOG_LEVEL": "WARNING",
    }
    notifier = subprocess.Popen(
        [sys.executable, "-m", "imagetron_notifier"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "notifier.log", "wb"),  # noqa: SIM115
    )
    proc = psutil.Process(notifier.pid)
    peak_rss = 0
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await provision_streams(js)
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection(LOCALHOST, port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        owners = [uuid.uuid4() for _ in range(args.owners)]
        per_owner_clients = args.clients // args.owners
        expected = args.events_per_owner
        results = Results()
        tasks = []
        start = time.perf_counter()
        for i in range(args.clients):
            owner = owners[i % args.owners]
            tasks.append(asyncio.create_task(client(port, owner, results, expected)))
            if i % 200 == 199:
                await asyncio.sleep(0.05)  # don't overrun the listen backlog
        while results.connected + results.refused < args.clients:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            if time.perf_counter() - start > args.timeout:
                break
            await asyncio.sleep(0.1)
        connect_seconds = time.perf_counter() - start
        await asyncio.sleep(1.0)  # let the last connections register with the hub
        rss_connected = proc.memory_info().rss

        interval = 1.0 / args.rate
        publish_start = time.perf_counter()
        published = 0
        for n in range(expected):
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
                target = publish_start + published * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if published % 100 == 0:
                    peak_rss = max(peak_rss, proc.memory_info().rss)
        publish_seconds = time.perf_counter() - publish_start
        deadline = time.perf_counter() + args.timeout
        while results.delivered < per_owner_clients * args.owners * expected:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        lat = sorted(results.latencies)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

        wanted = per_owner_clients * args.owners * expected
        print(f"clients: {args.clients} ({args.owners} owners x {per_owner_clients} tabs)")
        print(
            f"connected: {results.connected}/{args.clients} in {connect_seconds:.1f}s "
            f"(refused {results.refused})"
        )
        print(
            f"published: {published} events in {publish_seconds:.1f}s "
            f"({published / publish_seconds:.0f}/s)"
        )
        print(f"delivered: {results.delivered}/{wanted}")
        print(
            f"latency publish->client: p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, "
            f"max {pct(1.0):.1f} ms, mean {statistics.fmean(lat) * 1000 if lat else 0:.1f} ms"
        )
        print(
            f"notifier RSS: {rss_connected / 2**20:.0f} MiB with all connected, "
            f"peak {peak_rss / 2**20:.0f} MiB"
        )
    finally:
        await nc.close()
        notifier.terminate()
        try:
            notifier.wait(15)
        except subprocess.TimeoutExpired:
            notifier.kill()
        nats_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--owners", type=int, default=500)
    parser.add_argument("--events-per-owner", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500.0, help="events published per second")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
