"""Provider webhooks: how many the gateway accepts per second (verified and stored in
JetStream before the 2xx), and how long from a completion webhook to the browser's
`task.completed` event while other webhooks keep arriving.

    uv run python bench/webhooks.py [--webhooks 6000] [--tasks 20] [--background-rate 200]

Runs the whole embedded stack (real PostgreSQL, NATS, S3, sandbox and services) in a
temporary directory on free ports. Part 1 posts signed GoAPI callbacks for random task ids
(the images service acks them as unknown-task no-ops) over `--concurrency` keep-alive
connections, alternating with the same requests to a bare FastAPI endpoint (the reference).
Part 2 creates real tasks whose sandbox webhooks are switched off, waits until the provider
has finished each, then posts each completion webhook itself and times the `task.completed`
event on the SSE stream, one at a time, each after the previous one's five images are stored:
`--tasks` of them on an otherwise quiet stack, then `--tasks` more while progress webhooks for
other tasks arrive at `--background-rate` per second (the target's measure), with the CPU each
process (and this benchmark's own clients) used meanwhile, in cores; and `--tasks` more under
the same load each 0.1 s after the previous one's event, while the images service is still
storing the previous ones' images.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from common import (
    IMAGES_PER_TASK,
    Figure,
    NatsReference,
    at_most,
    bare_fastapi,
    bare_nats,
    bench_stack,
    both,
    collector_paused,
    consumed,
    cores_busy,
    http_post,
    machine,
    pct,
    post_load,
    process_cpu_seconds,
    ratio_at_least,
    stack_cpu_seconds,
    table,
)
from httpx_sse import aconnect_sse

from imagetron.stack import SANDBOX_GOAPI_KEY, EmbeddedStack
from imagetron_contracts.streams import WEBHOOKS_STREAM
from imagetron_platform.webhook_tokens import webhook_token

NAME = "webhooks"


@dataclass(frozen=True)
class Size:
    webhooks: int = 6000
    concurrency: int = 64
    tasks: int = 20
    background_tasks: int = 10
    background_rate: float = 200.0
    #: The background load runs this long before the first measured webhook.
    warm_up: float = 1.0


SMALL = Size(
    webhooks=400, concurrency=16, tasks=3, background_tasks=2, background_rate=50.0, warm_up=0.2
)


def _callback(stack: EmbeddedStack, task_id: uuid.UUID, data: dict[str, Any]) -> bytes:
    token = webhook_token(stack.secrets.webhook_token_key, "goapi", task_id)
    body = json.dumps({"timestamp": int(time.time()), "data": data}).encode()
    headers = {
        "Content-Type": "application/json",
        "x-webhook-secret": stack.secrets.webhook_secret,
    }
    return http_post(f"/webhooks/goapi/{task_id}?token={token}", headers, body)


def _progress(stack: EmbeddedStack, i: int) -> bytes:
    data = {"task_id": f"bench-{i}", "status": "processing", "output": {"progress": i % 100}}
    return _callback(stack, uuid.uuid4(), data)


async def accept(stack: EmbeddedStack, bare_port: int, size: Size) -> list[Figure]:
    """Accepted webhooks per second and their latency, against the bare endpoint's, in
    alternating rounds (the machine's load drifts)."""
    requests = [_progress(stack, i) for i in range(size.webhooks)]
    half = len(requests) // 2
    gateway, bare = [], []
    for part in (requests[:half], requests[half:]):
        bare.append(await post_load(bare_port, part, size.concurrency))
        gateway.append(await post_load(stack.ports.gateway, part, size.concurrency))
    accepted = sum(r.ok() for r in gateway)
    rate = accepted / sum(r.seconds for r in gateway)
    bare_rate = sum(r.ok() for r in bare) / sum(r.seconds for r in bare)
    latencies = [x for r in gateway for x in r.latencies]
    bare_latencies = [x for r in bare for x in r.latencies]
    refused = {s: n for r in gateway for s, n in r.statuses.items() if s != 200}
    note = f"{accepted}/{len(requests)} accepted" + (f", answers {refused}" if refused else "")
    p99, bare_p99 = pct(latencies, 0.99), pct(bare_latencies, 0.99)
    return [
        Figure(
            NAME,
            f"verified webhooks accepted, one gateway process, {size.concurrency} connections",
            rate,
            "/s",
            better="higher",
            target="≥ 0.35 x bare FastAPI",
            check=ratio_at_least(0.35),
            reference=bare_rate,
            reference_name="bare FastAPI",
            note=note,
        ),
        Figure(
            NAME,
            "accept latency p99",
            None if p99 is None else p99 * 1000,
            "ms",
            target="≤ 50 ms",
            check=at_most(50),
            reference=None if bare_p99 is None else bare_p99 * 1000,
            reference_name="bare FastAPI",
        ),
    ]


async def _finished_at_provider(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, task: dict[str, Any]
) -> dict[str, Any]:
    """The provider's task once it has finished (its data, as a webhook would carry it)."""
    while True:
        current = (await api.get(f"/api/v1/tasks/{task['id']}")).json()
        provider_id = current.get("provider_task_id")
        if provider_id:
            data: dict[str, Any] = (await sandbox.get(f"/api/v1/task/{provider_id}")).json()["data"]
            if data["status"] == "completed":
                return data
        await asyncio.sleep(0.1)


async def to_screen(stack: EmbeddedStack, size: Size, nats_ref: NatsReference) -> list[Figure]:
    """Completion webhook → `task.completed` on the SSE stream, one at a time (see the
    module's documentation for the three rounds)."""
    auth = {"Authorization": f"Bearer {stack.admin_api_key}"}
    completed_at: dict[str, float] = {}
    stored: dict[str, int] = {}
    connected = asyncio.Event()

    async def listen(client: httpx.AsyncClient) -> None:
        async with aconnect_sse(
            client,
            "GET",
            "/api/v1/events",
            params={"types": "task.completed,image.persisted"},
            timeout=None,
        ) as source:
            connected.set()
            async for sse in source.aiter_sse():
                if sse.event == "task.completed":
                    completed_at[json.loads(sse.data)["task"]["id"]] = time.perf_counter()
                elif sse.event == "image.persisted":
                    task_id = json.loads(sse.data)["image"]["task_id"]
                    stored[task_id] = stored.get(task_id, 0) + 1

    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=auth, timeout=30) as api,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{stack.ports.sandbox}",
            headers={"x-api-key": SANDBOX_GOAPI_KEY},
            timeout=30,
        ) as sandbox,
    ):
        listener = asyncio.create_task(listen(api))
        await asyncio.wait_for(connected.wait(), 30)
        prompt = (
            await api.post(
                "/api/v1/prompts", json={"text": "a lemon on blue tiles --sandbox-no-webhooks"}
            )
        ).json()
        count = 3 * size.tasks + size.background_tasks
        created = [
            (await api.post(f"/api/v1/prompts/{prompt['id']}/imagine")).json() for _ in range(count)
        ]
        finished = await asyncio.gather(*(_finished_at_provider(api, sandbox, t) for t in created))
        tasks = list(zip(created, finished, strict=True))
        quiet, loaded, back_to_back, background = (
            tasks[: size.tasks],
            tasks[size.tasks : 2 * size.tasks],
            tasks[2 * size.tasks : 3 * size.tasks],
            tasks[3 * size.tasks :],
        )
        key, secret = stack.secrets.webhook_token_key, stack.secrets.webhook_secret

        async def complete_one_by_one(
            measured: list[tuple[Any, Any]], *, until_stored: bool
        ) -> list[float]:
            """Post each completion, wait for its event (and its images stored), and let the
            stack settle 0.1 s."""
            sent_at: dict[str, float] = {}
            for task, data in measured:
                sent_at[task["id"]] = time.perf_counter()
                response = await api.post(
                    f"/webhooks/goapi/{task['id']}",
                    params={"token": webhook_token(key, "goapi", uuid.UUID(task["id"]))},
                    json={"timestamp": int(time.time()), "data": data},
                    headers={"x-webhook-secret": secret},
                )
                response.raise_for_status()
                deadline = time.perf_counter() + 10
                while task["id"] not in completed_at and time.perf_counter() < deadline:
                    await asyncio.sleep(0.002)
                deadline = time.perf_counter() + 30
                while until_stored and stored.get(task["id"], 0) < IMAGES_PER_TASK:
                    if time.perf_counter() > deadline:
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)
            return [(completed_at[t] - sent_at[t]) * 1000 for t in sent_at if t in completed_at]

        # What the accept test left in WEBHOOKS (thousands of callbacks for unknown tasks) is
        # handled first: the quiet round is quiet.
        waited = await consumed(stack.nats_connect_options(), WEBHOOKS_STREAM.name, 120)
        quiet_delays = await complete_one_by_one(quiet, until_stored=True)

        def progress(n: int) -> bytes:
            task, data = background[n % len(background)]
            report = {**data, "status": "processing", "output": {"task_progress": min(99, n)}}
            return _callback(stack, uuid.UUID(task["id"]), report)

        stop = asyncio.Event()
        load = asyncio.create_task(
            post_load(
                stack.ports.gateway,
                [progress(n) for n in range(int(size.background_rate * 600))],
                8,
                rate=size.background_rate,
                stop=stop,
            )
        )
        await asyncio.sleep(size.warm_up)  # the background load is under way

        def cpu_now() -> dict[str, float]:
            return {**stack_cpu_seconds(stack), **process_cpu_seconds({})}

        async def measured(
            tasks: list[tuple[Any, Any]], until_stored: bool
        ) -> tuple[list[float], str]:
            """The delays, and the cores each process kept busy meanwhile."""
            before, started = cpu_now(), time.perf_counter()
            with collector_paused():
                delays = await complete_one_by_one(tasks, until_stored=until_stored)
            return delays, cores_busy(before, cpu_now(), time.perf_counter() - started)

        delays, busy = await measured(loaded, True)
        # The same without waiting for the images: the images service stores the previous
        # completions' images (5 each) while the next completion arrives.
        piled_delays, piled_busy = await measured(back_to_back, False)
        stop.set()
        background_result = await load
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    sustained = background_result.rate
    note = (
        f"{len(delays)}/{len(loaded)} seen, each after the previous one's images are stored; "
        f"{sustained:.0f} other webhooks/s meanwhile"
    )
    p50, p99 = pct(delays, 0.5), pct(delays, 0.99)
    # The floor: the path crosses JetStream twice (WEBHOOKS, EVENTS).
    floor = (nats_ref.delivery_p50 * 2 * 1000, nats_ref.delivery_p99 * 2 * 1000)

    def beside(round_name: str, round_delays: list[float], of: int, note: str) -> Figure:
        """A round without a target: its p50 against the floor, its p99 in the note."""
        return Figure(
            NAME,
            f"webhook → task.completed on SSE, p50, {round_name}",
            pct(round_delays, 0.5),
            "ms",
            reference=floor[0],
            reference_name="2 bare JetStream hops",
            note=f"{len(round_delays)}/{of} seen, {note}",
        )

    return [
        beside(
            "nothing else running",
            quiet_delays,
            len(quiet),
            f"p99 {_ms(pct(quiet_delays, 0.99))}; measured once WEBHOOKS was consumed "
            f"({waited:.1f} s after the tasks were ready)",
        ),
        Figure(
            NAME,
            "webhook → task.completed on SSE, p50",
            p50,
            "ms",
            target="≤ 20 ms at 200 webhooks/s",
            check=both(at_most(20), lambda _: sustained >= 0.9 * size.background_rate),
            reference=floor[0],
            reference_name="2 bare JetStream hops",
            note=note,
        ),
        Figure(
            NAME,
            "webhook → task.completed on SSE, p99",
            p99,
            "ms",
            target="≤ 60 ms at 200 webhooks/s",
            check=both(at_most(60), lambda _: sustained >= 0.9 * size.background_rate),
            reference=floor[1],
            reference_name="2 bare JetStream hops",
            note=busy,
        ),
        beside(
            "the previous ones' images being stored",
            piled_delays,
            len(back_to_back),
            f"each 0.1 s after the previous one's event, p99 {_ms(pct(piled_delays, 0.99))}; "
            f"{piled_busy}",
        ),
    ]


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


async def run(
    stack: EmbeddedStack, bare_port: int, nats_ref: NatsReference, size: Size
) -> list[Figure]:
    return [*await accept(stack, bare_port, size), *await to_screen(stack, size, nats_ref)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=Size.webhooks)
    parser.add_argument("--concurrency", type=int, default=Size.concurrency)
    parser.add_argument("--tasks", type=int, default=Size.tasks)
    parser.add_argument("--background-rate", type=float, default=Size.background_rate)
    args = parser.parse_args()
    size = Size(args.webhooks, args.concurrency, args.tasks, background_rate=args.background_rate)

    async def measure(stack: EmbeddedStack, bare_port: int) -> list[Figure]:
        nats_ref = await bare_nats(stack.nats_connect_options(), 2000, size.concurrency, 100)
        return await run(stack, bare_port, nats_ref, size)

    with (
        tempfile.TemporaryDirectory(prefix="imagetron-bench-") as root,
        bench_stack(root) as stack,
        bare_fastapi() as bare_port,
    ):
        figures = asyncio.run(measure(stack, bare_port))
    print(machine())
    print(table(figures))


if __name__ == "__main__":
    main()
