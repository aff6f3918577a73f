"""Imagine → submit → callback → five images in S3, through the real servers."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any
from uuid import UUID, uuid4

import httpx
import nats
import pytest
from nats.js.api import AckPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from imagetron_contracts.models.common import RpcReply
from imagetron_contracts.models.images import (
    ImageContentLink,
    ImageKind,
    ImagePage,
    ImageQuery,
    ImagineCommand,
    ListImagesQuery,
    ListTasksQuery,
    Task,
    TaskPage,
    TaskQuery,
    TaskStatus,
)
from imagetron_contracts.streams import (
    RPC_IMAGES_IMAGES_CONTENT_URL,
    RPC_IMAGES_IMAGES_GET,
    RPC_IMAGES_IMAGES_LIST,
    RPC_IMAGES_IMAGINE,
    RPC_IMAGES_TASKS_GET,
    RPC_IMAGES_TASKS_LIST,
)
from imagetron_images.app.callbacks import callback_consumer
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound

pytestmark = pytest.mark.integration


async def imagine(
    stack: Any, owner: UUID, prompt_text: str = "a lighthouse in fog", title: str | None = None
) -> Task:
    return await stack.rpc.call(
        RPC_IMAGES_IMAGINE,
        ImagineCommand(
            owner_id=owner, prompt_id=uuid4(), prompt_text=prompt_text, prompt_title=title
        ),
        Task,
    )


async def get_task(stack: Any, owner: UUID, task_id: UUID) -> Task:
    return await stack.rpc.call(
        RPC_IMAGES_TASKS_GET, TaskQuery(owner_id=owner, task_id=task_id), Task
    )


async def list_images(stack: Any, owner: UUID, task_id: UUID) -> ImagePage:
    return await stack.rpc.call(
        RPC_IMAGES_IMAGES_LIST, ListImagesQuery(owner_id=owner, task_id=task_id), ImagePage
    )


async def inbox_has(stack: Any, consumer: str, message_id: str) -> bool:
    engine = create_async_engine(stack.settings.database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM images.inbox WHERE consumer = :c AND message_id = :m"),
                {"c": consumer, "m": message_id},
            )
            return bool(found)
    finally:
        await engine.dispose()


async def test_imagine_to_five_stored_images_with_a_duplicate_callback(
    stack: Any, wait_for: Any
) -> None:
    owner = uuid4()
    created = await imagine(stack, owner, title="Lighthouse in fog")
    assert created.status is TaskStatus.pending

    # The submit job reaches the sandbox, which accepts the task.
    async def submitted() -> Task | None:
        task = await get_task(stack, owner, created.id)
        return task if task.provider_task_id else None

    task = await wait_for(submitted)
    assert task.status is TaskStatus.submitted

    # The sandbox calls the gateway (which only records here) until the task is done.
    async def final_callback() -> dict[str, Any] | None:
        bodies = stack.gateway.bodies(created.id)
        done = [b for b in bodies if b["data"]["status"] == "completed"]
        return done[-1] if done else None

    body = await wait_for(final_callback)
    assert body["data"]["task_id"] == task.provider_task_id

    # Delivered twice under two ids (a provider retry after the dedupe window), and once
    # more under the first id (JetStream drops that one).
    await stack.deliver(created.id, body, "callback-1-" + str(created.id))
    await stack.deliver(created.id, body, "callback-2-" + str(created.id))
    await stack.deliver(created.id, body, "callback-1-" + str(created.id))

    async def all_persisted() -> ImagePage | None:
        page = await list_images(stack, owner, created.id)
        return page if len(page.items) == 5 and all(i.is_persisted for i in page.items) else None

    page = await wait_for(all_persisted, within=20)
    await wait_for(
        lambda: inbox_has(stack, callback_consumer("goapi"), "callback-2-" + str(created.id))
    )

    done = await get_task(stack, owner, created.id)
    assert (done.status, done.progress) == (TaskStatus.completed, 100)
    assert [(i.kind, i.index) for i in page.items] == [(ImageKind.grid, 0)] + [
        (ImageKind.version, n) for n in range(1, 5)
    ]

    # Each stored object is exactly what the provider served, and what we recorded.
    sources = [body["data"]["output"]["image_url"], *body["data"]["output"]["image_urls"]]
    for image, source in zip(page.items, sources, strict=True):
        original = (await stack.http.get(source)).content
        link = await stack.rpc.call(
            RPC_IMAGES_IMAGES_CONTENT_URL,
            ImageQuery(owner_id=owner, image_id=image.id),
            ImageContentLink,
        )
        stored = await stack.http.get(link.url)
        assert stored.status_code == 200, stored.text
        assert hashlib.sha256(stored.content).hexdigest() == image.sha256
        assert stored.content == original
        assert (link.content_type, image.content_type) == ("image/png", "image/png")
        assert image.bytes == len(original)
        assert image.width
        assert image.height
        assert image.attempts == 1

    # Every event exactly once, nothing from the duplicate.
    events = await stack.events(owner)
    counts = Counter(e["type"] for _, e in events)
    assert counts == {
        "task.created": 1, "task.submitted": 1, "task.completed": 1, "image.persisted": 5,
    }  # fmt: skip
    assert all(subject == f"events.images.{owner}.{e['type']}" for subject, e in events)
    assert len({e["id"] for _, e in events}) == len(events)
    assert [e["type"] for _, e in events][:3] == [
        "task.created",
        "task.submitted",
        "task.completed",
    ]
    persisted = {
        e["image"]["id"]: e["image"]["sha256"] for _, e in events if e["type"] == "image.persisted"
    }
    assert persisted == {str(i.id): i.sha256 for i in page.items}
    # What a subscriber needs to keep its own record of stored images (the publisher).
    stored = [e for _, e in events if e["type"] == "image.persisted"]
    assert {(e["prompt_text"], e["prompt_title"]) for e in stored} == {
        ("a lighthouse in fog", "Lighthouse in fog")
    }
    assert all(e["storage_key"].startswith(f"{owner}/{created.id}/") for e in stored)

    # The duplicate changed nothing.
    assert await get_task(stack, owner, created.id) == done
    assert await list_images(stack, owner, created.id) == page


async def test_the_whole_loop_with_progress_and_duplicated_webhooks(
    stack: Any, wait_for: Any
) -> None:
    """The gateway stand-in forwards every webhook (each one twice, by fault injection)."""
    stack.gateway.forward = True
    try:
        owner = uuid4()
        created = await imagine(
            stack, owner, "a red kite over dunes --sandbox-webhook-duplicates=1"
        )

        async def completed() -> Task | None:
            task = await get_task(stack, owner, created.id)
            return task if task.status is TaskStatus.completed else None

        await wait_for(completed, within=20)

        async def persisted() -> ImagePage | None:
            page = await list_images(stack, owner, created.id)
            return page if sum(i.is_persisted for i in page.items) == 5 else None

        await wait_for(persisted, within=20)
        events = await stack.events(owner)
        types = [e["type"] for _, e in events]
        assert types.count("task.created") == 1
        assert types.count("task.submitted") == 1
        assert types.count("task.completed") == 1
        assert types.count("image.persisted") == 5
        progress = [e["task"]["progress"] for _, e in events if e["type"] == "task.progress"]
        assert progress, "progress callbacks come through"
        assert progress == sorted(set(progress)), "each step once, never backwards"
    finally:
        stack.gateway.forward = False


async def test_a_failed_download_is_retried_then_recorded(stack: Any, wait_for: Any) -> None:
    """The sandbox answers 500 to every download of this task's images: after
    persist_max_deliveries attempts each image is recorded failed, with one event each."""
    stack.gateway.forward = True
    try:
        owner = uuid4()
        created = await imagine(stack, owner, "a cracked vase --sandbox-download-error=http_500")

        async def all_failed() -> ImagePage | None:
            page = await list_images(stack, owner, created.id)
            finished = [i for i in page.items if i.error and i.attempts == 3]
            return page if len(page.items) == 5 and len(finished) == 5 else None

        page = await wait_for(all_failed, within=40)
        assert not any(i.is_persisted for i in page.items)
        assert all("500" in (i.error or "") for i in page.items)
        events = await stack.events(owner)
        assert Counter(e["type"] for _, e in events)["image.failed"] == 5
        with pytest.raises(Conflict):
            await stack.rpc.call(
                RPC_IMAGES_IMAGES_CONTENT_URL,
                ImageQuery(owner_id=owner, image_id=page.items[0].id),
                ImageContentLink,
            )
    finally:
        stack.gateway.forward = False


async def test_everything_is_owner_scoped(stack: Any, wait_for: Any) -> None:
    owner, stranger = uuid4(), uuid4()
    created = await imagine(stack, owner)
    with pytest.raises(NotFound):
        await get_task(stack, stranger, created.id)
    page = await stack.rpc.call(RPC_IMAGES_TASKS_LIST, ListTasksQuery(owner_id=stranger), TaskPage)
    assert page.items == []
    with pytest.raises(NotFound):
        await stack.rpc.call(
            RPC_IMAGES_IMAGES_GET, ImageQuery(owner_id=owner, image_id=uuid4()), Task
        )


async def test_task_list_pages_newest_first(stack: Any) -> None:
    owner, prompt = uuid4(), uuid4()
    made = []
    for n in range(5):
        made.append(await stack.rpc.call(
            RPC_IMAGES_IMAGINE,
            ImagineCommand(owner_id=owner, prompt_id=prompt, prompt_text=f"study {n}"),
            Task,
        ))  # fmt: skip
    await imagine(stack, owner)  # another prompt
    seen, cursor = [], None
    while True:
        page = await stack.rpc.call(
            RPC_IMAGES_TASKS_LIST,
            ListTasksQuery(owner_id=owner, prompt_id=prompt, limit=2, cursor=cursor),
            TaskPage,
        )
        seen += [t.id for t in page.items]
        if not (cursor := page.next_cursor):
            break
    assert seen == [t.id for t in reversed(made)]
    with pytest.raises(InvalidRequest):
        await stack.rpc.call(
            RPC_IMAGES_TASKS_LIST, ListTasksQuery(owner_id=owner, cursor="garbage!"), TaskPage
        )


async def test_readiness_reports_every_dependency(stack: Any) -> None:
    transport = httpx.ASGITransport(app=stack.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://images") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "nats": "ok", "s3": "ok"}
        assert (await client.get("/livez")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_a_malformed_request_is_answered_422(stack: Any) -> None:
    message = await stack.broker.request(
        {"owner_id": "not-a-uuid", "prompt_text": "x"}, RPC_IMAGES_IMAGINE, timeout=5.0
    )
    reply = RpcReply.model_validate_json(message.body)
    assert reply.problem is not None
    assert reply.problem.status == 422


@pytest.mark.parametrize(
    ("stream", "durable", "subject", "max_deliver"),
    [
        ("WORK", "images-submit", "work.images.submit", 10),
        ("WORK", "images-persist", "work.images.persist", 3),
        ("WEBHOOKS", "images-webhooks-goapi", "webhooks.goapi", 10),
    ],
)
async def test_durable_consumers_redeliver_a_finite_number_of_times(
    stack: Any, stream: str, durable: str, subject: str, max_deliver: int
) -> None:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        info = await nc.jetstream().consumer_info(stream, durable)
    finally:
        await nc.close()
    assert info.config.durable_name == durable
    assert info.config.filter_subject == subject
    assert info.config.ack_policy == AckPolicy.EXPLICIT
    assert info.config.max_deliver == max_deliver


async def test_a_task_busy_elsewhere_does_not_hold_up_other_tasks_callbacks(
    stack: Any, wait_for: Any
) -> None:
    """Callbacks are applied side by side: while one task's row is locked (another
    transition of that task under way), another task's completion still lands at once;
    the first applies when its row is free."""
    owner = uuid4()
    busy, other = await imagine(stack, owner), await imagine(stack, owner)

    def final_callback(task_id: UUID) -> Any:
        async def check() -> dict[str, Any] | None:
            done = [b for b in stack.gateway.bodies(task_id) if b["data"]["status"] == "completed"]
            return done[-1] if done else None

        return check

    def completed(task_id: UUID) -> Any:
        async def check() -> bool:
            task = await get_task(stack, owner, task_id)
            return task.status is TaskStatus.completed

        return check

    # The sandbox's callbacks come when they come on a loaded machine; what is timed below
    # is only the other task's completion while the first is locked (within the 30 s
    # statement timeout a blocked callback would wait).
    bodies = {t.id: await wait_for(final_callback(t.id), within=60) for t in (busy, other)}
    engine = create_async_engine(stack.settings.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(
                text("SELECT id FROM images.tasks WHERE id = :id FOR UPDATE"), {"id": busy.id}
            )
            await stack.deliver(busy.id, bodies[busy.id], f"busy-{busy.id}")
            await stack.deliver(other.id, bodies[other.id], f"other-{other.id}")
            await wait_for(completed(other.id), within=20)
            assert (await get_task(stack, owner, busy.id)).status is not TaskStatus.completed
            await conn.rollback()
        await wait_for(completed(busy.id), within=30)
    finally:
        await engine.dispose()
