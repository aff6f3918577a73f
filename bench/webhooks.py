"""Provider webhooks: how many the gateway accepts per second (verified and stored in
JetStream before the 2xx), and how long from a completion webhook to the browser's
`task.completed` event.

    uv run python bench/webhooks.py --webhooks 5000 --concurrency 64 --tasks 20

Runs the whole embedded stack (real PostgreSQL, NATS, S3, sandbox and services) in a
temporary directory on free ports. Part 1 posts signed GoAPI callbacks for random task ids
(the images service acks them as unknown-task no-ops) as fast as `--concurrency` clients
can. Part 2 creates real tasks whose sandbox webhooks are switched off, waits until the
provider has finished each, then posts its completion webhook itself and times the
`task.completed` event on the SSE stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid

import httpx
from httpx_sse import aconnect_sse

from imagetron.stack import SANDBOX_GOAPI_KEY, EmbeddedStack, StackPorts
from imagetron_platform.webhook_tokens import webhook_token


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def accept_rate(stack: EmbeddedStack, total: int, concurrency: int) -> None:
    """Raw keep-alive HTTP/1.1 connections: an httpx client saturates a core well before
    the gateway does (measured), which would make this a benchmark of the client."""
    secret = stack.secrets.webhook_secret
    key = stack.secrets.webhook_token_key
    port = stack.ports.gateway
    remaining = list(range(total))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining:
                i = remaining.pop()
                task_id = uuid.uuid4()
                body = json.dumps(
                    {
                        "timestamp": int(time.time()),
                        "data": {
                            "task_id": f"bench-{i}",
                            "status": "processing",
                            "output": {"progress": i % 100},
                        },
                    }
                ).encode()
                token = webhook_token(key, "goapi", task_id)
                started = time.perf_counter()
                writer.write(
                    f"POST /webhooks/goapi/{task_id}?token={token} HTTP/1.1\r\n"
                    f"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"x-webhook-secret: {secret}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    print(
        f"webhooks accepted: {statuses.get(200, 0)}/{total} in {elapsed:.1f}s = "
        f"{statuses.get(200, 0) / elapsed:.0f}/s with {concurrency} concurrent connections "
        f"(statuses {statuses})"
    )
    print(
        f"  accept latency: p50 {_pct(latencies, 0.5):.1f} ms, p99 {_pct(latencies, 0.99):.1f} ms"
    )


async def webhook_to_completed(stack: EmbeddedStack, tasks: int) -> None:
    auth = {"Authorization": f"Bearer {stack.admin_api_key}"}
    completed_at: dict[str, float] = {}
    connected = asyncio.Event()

    async def listen(client: httpx.AsyncClient) -> None:
        async with aconnect_sse(
            client, "GET", "/api/v1/events", params={"types": "task.completed"}
        ) as source:
            connected.set()
            async for sse in source.aiter_sse():
                if sse.event == "task.completed":
                    completed_at[json.loads(sse.data)["task"]["id"]] = time.perf_counter()

    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=auth, timeout=None) as api,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{stack.ports.sandbox}",
            headers={"x-api-key": SANDBOX_GOAPI_KEY},
        ) as sandbox,
    ):
        listener = asyncio.create_task(listen(api))
        await asyncio.wait_for(connected.wait(), 10)
        prompt = (
            await api.post(
                "/api/v1/prompts", json={"text": "a lemon on blue tiles --sandbox-no-webhooks"}
            )
        ).json()
        created = [
            (await api.post(f"/api/v1/prompts/{prompt['id']}/imagine")).json() for _ in range(tasks)
        ]
        sent_at: dict[str, float] = {}
        key, secret = stack.secrets.webhook_token_key, stack.secrets.webhook_secret
        for task in created:
            while True:  # wait until submitted and finished at the provider
                current = (await api.get(f"/api/v1/tasks/{task['id']}")).json()
                provider_id = current.get("provider_task_id")
                if provider_id:
                    data = (await sandbox.get(f"/api/v1/task/{provider_id}")).json()["data"]
                    if data["status"] == "completed":
                        break
                await asyncio.sleep(0.2)
            sent_at[task["id"]] = time.perf_counter()
            response = await api.post(
                f"/webhooks/goapi/{task['id']}",
                params={"token": webhook_token(key, "goapi", uuid.UUID(task["id"]))},
                json={"timestamp": int(time.time()), "data": data},
                headers={"x-webhook-secret": secret},
            )
            response.raise_for_status()
        deadline = time.perf_counter() + 60
        while len(completed_at) < tasks and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    delays = [completed_at[t] - sent_at[t] for t in sent_at if t in completed_at]
    print(
        f"webhook -> task.completed on SSE: {len(delays)}/{tasks} tasks, "
        f"p50 {_pct(delays, 0.5):.1f} ms, p99 {_pct(delays, 0.99):.1f} ms, "
        f"mean {statistics.fmean(delays) * 1000:.1f} ms"
    )


async def main_async(stack: EmbeddedStack, args: argparse.Namespace) -> None:
    await accept_rate(stack, args.webhooks, args.concurrency)
    await webhook_to_completed(stack, args.tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    # The stack starts and stops outside the event loop (it runs migrations with its own).
    with (
        tempfile.TemporaryDirectory(prefix="imagetron-bench-") as root,
        EmbeddedStack(root, StackPorts.free()) as stack,
    ):
        asyncio.run(main_async(stack, args))


if __name__ == "__main__":
    main()
