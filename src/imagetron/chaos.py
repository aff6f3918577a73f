"""Steady load, kill -9, and the proof that nothing was lost, applied twice or skipped.

Shared by the multi-node test (`tests/e2e/test_cluster.py`), the short chaos test
(`tests/e2e/test_chaos.py`) and the long chaos run (`bench/chaos.py`). Everything is seen
as a user sees it (HTTP and SSE through the gateway), and then checked against what the
system recorded (the EVENTS stream, read as the stack's NATS admin, and the S3 bucket):

* `SseFollower`: a browser's EventSource. Whenever its stream ends or breaks (its gateway
  or notifier died) it reconnects with `Last-Event-ID`; it records every event id it got.
* `Load`: an artist's steady imagines, each with its own `Idempotency-Key` and retried
  with that same key when the answer is lost (connection cut, 502/503/504, 409 while a
  first attempt is still answered), as a careful client does.
* `Supervised`: the stack's supervisor on a thread, as `imagetron up` runs it.
* `kill`: SIGKILL one process by name; `Healing.wait` gives the seconds until it serves
  again.
* `audit`: waits until every task of the load has ended, then counts: tasks not completed,
  images missing or stored twice, events applied twice (an aggregate version seen twice
  or going back), SSE gaps (an event of the owner a follower never got) and duplicates,
  tasks the load never asked for (a request sent again that created a second task) and
  orphan objects (files in the bucket that are no image of the load's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
from httpx_sse import aconnect_sse
from nats.js.api import ConsumerConfig, DeliverPolicy

from imagetron.stack import EmbeddedStack
from imagetron.supervisor import RestartPolicy, Supervisor
from imagetron.unfinished_tasks import describe_unfinished

#: The stack's settings for a chaos run: no rate limit on the one artist, an imagine whose
#: gateway died mid-answer taken over by its retry after 3 s, and a task whose webhook was
#: lost while a process was down asked about after 3 s of quiet.
CHAOS_ENV = {
    "IMAGETRON_RATE_LIMIT_PER_KEY": "1000000",
    "IMAGETRON_RATE_LIMIT_PER_ADDRESS": "1000000",
    "IMAGETRON_IDEMPOTENCY_LOCK_SECONDS": "3",
    "IMAGETRON_RECONCILE_AFTER_SECONDS": "3",
    "IMAGETRON_RECONCILE_RETRY_SECONDS": "2",
    "IMAGETRON_RECONCILE_INTERVAL_SECONDS": "1",
}

#: Answers after which a careful client tries again with the same Idempotency-Key.
RETRYABLE = frozenset({409, 429, 502, 503, 504})
IMAGES_PER_TASK = 5


@dataclass
class SseFollower:
    """One browser tab following its owner's events through the gateway, for as long as
    `run` runs, reconnecting with `Last-Event-ID` whenever the stream breaks."""

    client: httpx.AsyncClient
    ids: list[int] = field(default_factory=list)
    connects: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _received: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run(self) -> None:
        while True:
            # From the owner's first event on (`0`: everything the stream keeps), so that an
            # event published before the first connection is a gap too if it never comes.
            headers = {"Last-Event-ID": str(self.ids[-1] if self.ids else 0)}
            with contextlib.suppress(httpx.HTTPError, ValueError):
                async with aconnect_sse(
                    self.client, "GET", "/api/v1/events", headers=headers, timeout=None
                ) as source:
                    if source.response.status_code == 200:
                        self.connects += 1
                        self.connected.set()
                        async for sse in source.aiter_sse():
                            if sse.id and sse.event and sse.event != "message":
                                async with self._received:
                                    self.ids.append(int(sse.id))
                                    self._received.notify_all()
            await asyncio.sleep(0.2)

    async def reached(self, seq: int) -> None:
        """Returns once an event at or after stream sequence `seq` has arrived."""
        async with self._received:
            await self._received.wait_for(lambda: max(self.ids, default=0) >= seq)

    @property
    def duplicates(self) -> int:
        return len(self.ids) - len(set(self.ids))

    @property
    def out_of_order(self) -> int:
        return sum(1 for a, b in zip(self.ids, self.ids[1:], strict=False) if b <= a)


@contextlib.asynccontextmanager
async def following(
    client: httpx.AsyncClient, count: int, connect_within: float = 30.0
) -> AsyncIterator[list[SseFollower]]:
    """`count` SSE followers of `client`'s owner, connected before this yields, following
    until it exits."""
    followers = [SseFollower(client) for _ in range(count)]
    tasks = [asyncio.create_task(f.run()) for f in followers]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(f.connected.wait() for f in followers)), connect_within
        )
        yield followers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Load:
    """Imagines at a steady pace, each retried with its own Idempotency-Key until it is
    accepted (202) or `deadline` seconds have passed."""

    client: httpx.AsyncClient
    task_ids: list[str] = field(default_factory=list)
    retries: int = 0
    refused: list[str] = field(default_factory=list)

    async def run(
        self,
        count: int,
        every: float,
        text: str = "a pear on slate",
        imagine: dict[str, Any] | None = None,
    ) -> None:
        """`count` imagines, one every `every` seconds; `text` may carry the sandbox's fault
        tokens (`--sandbox-duplicate-webhooks=3 --sandbox-out-of-order`), `imagine` is the
        imagine's body."""
        for n in range(count):
            started = time.monotonic()
            prompt = await self._create("/api/v1/prompts", {"text": f"{text} #{n}"})
            if prompt is not None:
                path = f"/api/v1/prompts/{prompt['id']}/imagine"
                task = await self._create(path, imagine or {})
                if task is not None:
                    self.task_ids.append(task["id"])
            await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

    async def _create(
        self, path: str, body: dict[str, Any], deadline: float = 60.0
    ) -> dict[str, Any] | None:
        key = str(uuid.uuid4())
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            try:
                response = await self.client.post(
                    path, json=body, headers={"Idempotency-Key": key}, timeout=15
                )
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code in (200, 201, 202):
                result: dict[str, Any] = response.json()
                return result
            if response is not None and response.status_code not in RETRYABLE:
                self.refused.append(f"{path}: {response.status_code} {response.text[:200]}")
                return None
            self.retries += 1
            await asyncio.sleep(0.3)
        self.refused.append(f"{path}: no answer within {deadline:.0f} s")
        return None


class Supervised:
    """The stack's supervisor on a thread (what `imagetron up` runs), until closed."""

    def __init__(self, stack: EmbeddedStack, say: Any = None) -> None:
        self.lines: list[str] = []
        self._stop = threading.Event()
        self.supervisor = Supervisor(
            stack.processes(),
            say=say or self.lines.append,
            # Quick liveness: a test should not wait 6 s to notice a hung process.
            policy=RestartPolicy(probe_every=1.0),
        )
        self._thread = threading.Thread(
            target=self.supervisor.run, args=(self._stop.is_set,), daemon=True
        )

    def __enter__(self) -> Supervised:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Killed:
    name: str
    pid: int
    at: float
    healed_after: float | None = None


def kill(stack: EmbeddedStack, name: str) -> Killed:
    """SIGKILL the process `name` of the stack (by its PID)."""
    process = dict(stack.processes())[name]
    pid = process.pid
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    os.kill(pid, signal.SIGKILL)
    return Killed(name, pid, time.monotonic())


async def healed(stack: EmbeddedStack, killed: Killed, within: float = 60.0) -> float:
    """Seconds from the kill until a new process of that name answers its readiness probe."""
    process = dict(stack.processes())[killed.name]
    while time.monotonic() < killed.at + within:
        pid = process.pid
        if pid is not None and pid != killed.pid:
            ready = await asyncio.to_thread(process.is_ready)
            if ready:
                killed.healed_after = time.monotonic() - killed.at
                return killed.healed_after
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{killed.name} did not come back within {within:.0f} s")


def kill_order(names: list[str], rng: random.Random) -> Iterator[str]:
    """`names` in a random order, again and again (the chaos run)."""
    names = list(names)
    while True:
        rng.shuffle(names)
        yield from names


async def kill_in_turn(
    stack: EmbeddedStack, names: list[str], every: float, within: float = 150.0
) -> list[Killed]:
    """SIGKILL each of `names` in turn, `every` seconds apart; then wait until each is back
    (`Killed.healed_after`)."""
    killed = []
    for name in names:
        killed.append(kill(stack, name))
        await asyncio.sleep(every)
    await asyncio.gather(*(healed(stack, k, within) for k in killed))
    return killed


@contextlib.asynccontextmanager
async def user(stack: EmbeddedStack, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A new user of the stack and an API client as them (through the gateway)."""
    admin = {"Authorization": f"Bearer {stack.admin_api_key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=admin, timeout=30) as api:
        created = await api.post("/api/v1/users", json={"name": name})
        created.raise_for_status()
        key = created.json()["api_key"]
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        yield client


@dataclass
class Audit:
    tasks: int
    #: Each task that did not finish: what the API and the database say of it.
    not_completed: dict[str, str]
    images: int
    images_missing: int
    images_stored_twice: int
    events_applied_twice: int
    events_in_stream: int
    sse_gaps: int
    #: Per follower that lacks events: which (stream sequences), and the last it got.
    sse_missing: list[str]
    sse_duplicates: int
    sse_out_of_order: int
    sse_reconnects: int
    objects_in_s3: int
    #: Objects that are not the stored file of one of the load's images (orphans). Seen in
    #: 3 of about 12 multi-node runs before request ids: the five images of a second task
    #: an imagine sent again had created (its first answer lost with a killed replica).
    unexpected_objects: list[str]
    #: The owner's tasks that are none of the load's: created by a request sent again.
    tasks_not_asked_for: int
    #: Images the API lists as stored whose file is not in the bucket.
    objects_missing: int
    #: Tasks still holding a provider slot (submitted or processing) once the load is over.
    leaked_slots: int

    def figures(self) -> str:
        return (
            f"{self.tasks} tasks ({len(self.not_completed)} not completed: lost webhooks or "
            f"work), {self.images} images ({self.images_missing} missing, "
            f"{self.images_stored_twice} stored twice, {self.objects_in_s3} objects in S3, "
            f"{self.objects_missing} missing there, {len(self.unexpected_objects)} orphans), "
            f"{self.tasks_not_asked_for} tasks not asked for, "
            f"{self.events_in_stream} events ({self.events_applied_twice} applied twice), "
            f"{self.leaked_slots} leaked slots, SSE: {self.sse_gaps} gaps, "
            f"{self.sse_duplicates} duplicates, {self.sse_out_of_order} out of order, "
            f"{self.sse_reconnects} reconnects"
            + (f" (missing: {'; '.join(self.sse_missing)})" if self.sse_missing else "")
        )

    @property
    def clean(self) -> bool:
        return not (
            self.leaked_slots
            or self.objects_missing
            or self.unexpected_objects
            or self.tasks_not_asked_for
            or self.not_completed
            or self.images_missing
            or self.images_stored_twice
            or self.events_applied_twice
            or self.sse_gaps
            or self.sse_duplicates
            or self.sse_out_of_order
        )


async def wait_until_done(
    client: httpx.AsyncClient, task_ids: list[str], within: float
) -> dict[str, dict[str, Any]]:
    """Each task as the API shows it once it has ended and all its images are stored (or
    as it stands when `within` seconds have passed)."""
    until = time.monotonic() + within
    done: dict[str, dict[str, Any]] = {}
    while True:
        for task_id in [t for t in task_ids if t not in done]:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                task = (await client.get(f"/api/v1/tasks/{task_id}")).json()
                if task.get("status") in ("failed", "cancelled"):
                    done[task_id] = task
                elif task.get("status") == "completed":
                    images = (
                        await client.get("/api/v1/images", params={"task_id": task_id})
                    ).json()["items"]
                    if sum(i["is_persisted"] for i in images) >= IMAGES_PER_TASK:
                        done[task_id] = {**task, "images": images}
        if len(done) == len(task_ids) or time.monotonic() > until:
            break
        await asyncio.sleep(0.5)
    for task_id in task_ids:
        if task_id not in done:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                done[task_id] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    return done


async def owner_task_ids(client: httpx.AsyncClient) -> set[str]:
    """Every task of the client's owner, as the API lists them."""
    found: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/tasks", params=params)).raise_for_status().json()
        found |= {task["id"] for task in page["items"]}
        cursor = page.get("next_cursor")
        if not cursor:
            return found


async def owner_events(
    stack: EmbeddedStack, owner_id: str, within: float = 60.0
) -> list[tuple[int, dict[str, Any]]]:
    """Every event of `owner_id` in the EVENTS stream, (sequence, envelope), read as the
    stack's NATS admin. Read again from the start while JetStream answers that it cannot
    serve (503: the node of the reading consumer was just killed, or the stream has no
    leader yet), for `within` seconds at most."""
    until = time.monotonic() + within
    while True:
        try:
            return await _owner_events(stack, owner_id)
        except nats.errors.Error:
            if time.monotonic() > until:
                raise
            await asyncio.sleep(1.0)


async def _owner_events(stack: EmbeddedStack, owner_id: str) -> list[tuple[int, dict[str, Any]]]:
    nc = await nats.connect(**stack.nats_connect_options())
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            f"events.*.{owner_id}.>",
            durable=None,
            stream="EVENTS",
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found: list[tuple[int, dict[str, Any]]] = []
        while True:
            try:
                batch = await sub.fetch(256, timeout=1.0)
            except TimeoutError:
                break
            for msg in batch:
                found.append((msg.metadata.sequence.stream, json.loads(msg.data)))
                await msg.ack()
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def _applied_twice(events: list[tuple[int, dict[str, Any]]]) -> int:
    """Events that repeat an aggregate's version or go back: a change applied twice (or
    one announced out of order)."""
    last: dict[tuple[str, str], int] = {}
    twice = 0
    for _, event in events:
        version = event.get("version") or 0
        aggregate = _aggregate(event)
        if aggregate is None or not version:
            continue
        if version <= last.get(aggregate, 0):
            twice += 1
        last[aggregate] = max(version, last.get(aggregate, 0))
    return twice


def _aggregate(event: dict[str, Any]) -> tuple[str, str] | None:
    for kind in ("task", "image", "prompt", "chat", "publication"):
        if isinstance(event.get(kind), dict) and "id" in event[kind]:
            return kind, str(event[kind]["id"])
    return None


def _unexpected(objects: list[str], images: list[dict[str, Any]]) -> list[str]:
    """Objects beyond one stored file per image (`<owner>/<task>/<kind>-<index>-<id>.<ext>`):
    an object of no image the API lists (`<name>`), or more than one object of one image
    (`<name> (one of N objects of its image)`: another extension, or the same key listed
    again)."""
    expected = {_stem(i) for i in images}
    by_image: dict[str, list[str]] = {}
    for name in sorted(objects):
        by_image.setdefault(name.rsplit(".", 1)[0], []).append(name)
    unexpected = []
    for stem, names in sorted(by_image.items()):
        if stem not in expected:
            unexpected += names
        elif len(names) > 1:
            unexpected += [f"{n} (one of {len(names)} objects of its image)" for n in names[1:]]
    return unexpected


def _stem(image: dict[str, Any]) -> str:
    """An image's object name without its extension (`Image.storage_key_for`, images)."""
    return f"{image['owner_id']}/{image['task_id']}/{image['kind']}-{image['index']}-{image['id']}"


def s3_objects(stack: EmbeddedStack, prefix: str) -> list[str]:
    """Original images stored under `prefix` (thumbnails and previews aside)."""
    from minio import Minio

    s3 = stack.infra.s3
    client = Minio(
        s3.endpoint.removeprefix("http://"),
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        secure=False,
        region=s3.region,
    )
    names = []
    for bucket in client.list_buckets():
        for obj in client.list_objects(bucket.name, prefix=prefix, recursive=True):
            name = obj.object_name or ""
            if ".thumb." not in name and "/preview-" not in name:
                names.append(name)
    return names


async def audit(
    stack: EmbeddedStack,
    client: httpx.AsyncClient,
    load: Load,
    followers: list[SseFollower],
    *,
    within: float,
) -> Audit:
    owner_id = (await client.get("/api/v1/me")).json()["id"]
    tasks = await wait_until_done(client, load.task_ids, within)
    not_completed = await describe_unfinished(
        stack.infra.postgres.asyncpg_dsn,
        client,
        {
            task_id: task
            for task_id, task in tasks.items()
            if task.get("status") != "completed" or "images" not in task
        },
        IMAGES_PER_TASK,
    )
    images = [image for task in tasks.values() for image in task.get("images", [])]
    events = await owner_events(stack, owner_id)
    persisted = Counter(e["image"]["id"] for _, e in events if e.get("type") == "image.persisted")
    stream_ids = {seq for seq, _ in events}
    # Followers catch up with the last events before they are compared: one that was
    # reconnecting through a restarting notifier may need a while on a loaded machine (an
    # event it still lacks after this is counted as a gap).
    last = max(stream_ids, default=0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(f.reached(last) for f in followers)), 60)
    objects = await asyncio.to_thread(s3_objects, stack, f"{owner_id}/")
    return Audit(
        tasks=len(load.task_ids),
        not_completed=not_completed,
        images=len(images),
        images_missing=len(load.task_ids) * IMAGES_PER_TASK
        - sum(1 for i in images if i["is_persisted"]),
        images_stored_twice=sum(n - 1 for n in persisted.values() if n > 1)
        + sum(n - 1 for n in Counter(objects).values() if n > 1),
        events_applied_twice=_applied_twice(events),
        events_in_stream=len(events),
        sse_gaps=sum(len(stream_ids - set(f.ids)) for f in followers),
        sse_missing=[
            f"follower {n}: {sorted(stream_ids - set(f.ids))} of {min(stream_ids)}-{last}, "
            f"its last {f.ids[-1] if f.ids else None}, {f.connects} connects"
            for n, f in enumerate(followers, start=1)
            if stream_ids - set(f.ids)
        ],
        sse_duplicates=sum(f.duplicates for f in followers),
        sse_out_of_order=sum(f.out_of_order for f in followers),
        sse_reconnects=sum(max(f.connects - 1, 0) for f in followers),
        objects_in_s3=len(objects),
        unexpected_objects=_unexpected(objects, images),
        tasks_not_asked_for=len(await owner_task_ids(client) - set(load.task_ids)),
        objects_missing=len(
            {_stem(i) for i in images} - {name.rsplit(".", 1)[0] for name in objects}
        ),
        leaked_slots=sum(
            task.get("status") in ("submitted", "processing") for task in tasks.values()
        ),
    )
