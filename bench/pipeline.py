"""The whole pipeline: imagine → provider → callback → five images stored, as fast as the
stack takes them, and the CPU each task costs.

    uv run python bench/pipeline.py [--tasks 200] [--concurrency 16]

Runs the embedded stack with the benchmark settings (`common.BENCH_ENV`: the sandbox
answers at once with 512-pixel grids, no progress steps; per-user limits lifted). One user
asks for `--tasks` generations over `--concurrency` connections through the gateway; the
run ends when the event stream (through the gateway) has announced every image stored.
CPU per task is the CPU time of every Imagetron process (services, PostgreSQL with its
backends, NATS, the S3 server) during the run divided by the tasks; the sandbox's (the
provider rendering and serving PNGs) is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass

import httpx
from common import (
    IMAGES_PER_TASK,
    Figure,
    at_least,
    bench_stack,
    machine,
    stack_cpu_seconds,
    table,
)
from httpx_sse import aconnect_sse

from imagetron.stack import EmbeddedStack

NAME = "pipeline"


@dataclass(frozen=True)
class Size:
    tasks: int = 200
    concurrency: int = 16
    timeout: float = 120.0


SMALL = Size(tasks=4, concurrency=4, timeout=30.0)


async def run(stack: EmbeddedStack, size: Size) -> list[Figure]:
    admin = {"Authorization": f"Bearer {stack.admin_api_key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=admin, timeout=30) as c:
        made = (await c.post("/api/v1/users", json={"name": "pipeline-bench"})).json()
    auth = {"Authorization": f"Bearer {made['api_key']}"}
    wanted = size.tasks * IMAGES_PER_TASK
    stored: set[str] = set()
    connected, done = asyncio.Event(), asyncio.Event()

    async def listen(api: httpx.AsyncClient) -> None:
        params = {"types": "image.persisted"}
        async with aconnect_sse(api, "GET", "/api/v1/events", params=params) as source:
            connected.set()
            async for sse in source.aiter_sse():
                if sse.event == "image.persisted":
                    stored.add(json.loads(sse.data)["image"]["id"])
                    if len(stored) >= wanted:
                        done.set()
                        return

    limits = httpx.Limits(max_connections=size.concurrency + 2)
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=auth, timeout=httpx.Timeout(30, read=None),
        limits=limits,
    ) as api:  # fmt: skip
        listener = asyncio.create_task(listen(api))
        await asyncio.wait_for(connected.wait(), 30)
        prompt = (await api.post("/api/v1/prompts", json={"text": "a pear on linen"})).json()
        queue = iter(range(size.tasks))
        refused: dict[int, int] = {}

        async def imagine() -> None:
            for _ in queue:
                answer = await api.post(f"/api/v1/prompts/{prompt['id']}/imagine")
                if answer.status_code != 202:
                    refused[answer.status_code] = refused.get(answer.status_code, 0) + 1

        cpu_before = stack_cpu_seconds(stack)
        started = time.perf_counter()
        try:
            await asyncio.gather(*(imagine() for _ in range(size.concurrency)))
            accepted = time.perf_counter() - started
            await asyncio.wait_for(done.wait(), size.timeout)
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - started
        cpu_after = stack_cpu_seconds(stack)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    tasks_done = len(stored) / IMAGES_PER_TASK
    ours = sum(v for k, v in cpu_after.items() if k != "sandbox") - sum(
        v for k, v in cpu_before.items() if k != "sandbox"
    )
    sandbox = cpu_after.get("sandbox", 0.0) - cpu_before.get("sandbox", 0.0)
    split = ", ".join(
        f"{name} {(cpu_after[name] - cpu_before.get(name, 0.0)) / max(tasks_done, 1) * 1000:.0f}"
        for name in sorted(cpu_after, key=lambda n: cpu_before.get(n, 0.0) - cpu_after[n])
        if name != "sandbox"
    )
    note = f"{len(stored)}/{wanted} images stored in {elapsed:.1f} s ({size.tasks} asked in " + (
        f"{accepted:.1f} s)" if not refused else f"{accepted:.1f} s, refused {refused})"
    )
    return [
        Figure(
            NAME,
            f"tasks completed with their 5 images stored, {size.concurrency} clients",
            tasks_done / elapsed,
            "/s",
            better="higher",
            target="≥ 20/s",
            check=at_least(20),
            note=note,
        ),
        Figure(
            NAME,
            "images stored",
            len(stored) / elapsed,
            "/s",
            better="higher",
            target="≥ 100/s",
            check=at_least(100),
        ),
        Figure(
            NAME,
            "CPU per task, Imagetron's processes",
            ours / max(tasks_done, 1) * 1000,
            "ms",
            note=f"ms each: {split}; the sandbox (provider) "
            f"{sandbox / max(tasks_done, 1) * 1000:.0f} ms apart",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=Size.tasks)
    parser.add_argument("--concurrency", type=int, default=Size.concurrency)
    args = parser.parse_args()
    size = Size(args.tasks, args.concurrency)
    with tempfile.TemporaryDirectory(prefix="imagetron-bench-") as root, bench_stack(root) as stack:
        figures = asyncio.run(run(stack, size))
    print(machine())
    print(table(figures))


if __name__ == "__main__":
    main()
