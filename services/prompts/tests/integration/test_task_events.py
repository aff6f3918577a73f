"""Task events from the EVENTS stream move the prompt's counters exactly once, whatever the
duplicates, redeliveries and ordering; each change is announced as `prompt.updated`; a
failure is retried after a delay."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator

import nats
import pytest
from sqlalchemy import select

from imagetron.servers import NatsServer
from imagetron_contracts.models.images import TaskEventType
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    GenerationState,
    Prompt,
    PromptQuery,
)
from imagetron_contracts.streams import RPC_PROMPTS_CREATE, RPC_PROMPTS_GET
from imagetron_platform.clock import utcnow
from imagetron_platform.nats_connection import provision_streams
from imagetron_prompts.adapters.tables import inbox
from imagetron_prompts.adapters.unit_of_work import PromptsUnitOfWork
from imagetron_prompts.app.dependencies import Dependencies
from imagetron_prompts.app.prompts import TASK_EVENTS_CONSUMER
from imagetron_prompts.bootstrap import build_broker, build_llm
from imagetron_prompts.entrypoints.messaging import TASK_EVENTS_DURABLE, TASK_EVENTS_REDELIVERY
from imagetron_prompts.settings import PromptsSettings

from .support import publish, task_event

pytestmark = pytest.mark.integration


async def new_prompt(rpc, owner_id) -> Prompt:
    return await rpc.call(
        RPC_PROMPTS_CREATE, CreatePromptCommand(owner_id=owner_id, text="a lighthouse"), Prompt
    )


async def current(rpc, prompt: Prompt) -> Prompt:
    query = PromptQuery(owner_id=prompt.owner_id, prompt_id=prompt.id)
    return await rpc.call(RPC_PROMPTS_GET, query, Prompt)


def counters(prompt: Prompt) -> tuple[int, int, int, GenerationState]:
    return (
        prompt.active_tasks,
        prompt.completed_tasks,
        prompt.failed_tasks,
        prompt.generation_state,
    )


async def test_duplicated_and_redelivered_events_count_once(
    rpc, js, tap, consumed, session_factory
):
    owner = uuid.uuid4()
    prompt = await new_prompt(rpc, owner)
    updates = await tap(f"events.prompts.{owner}.prompt.updated")
    task_id = uuid.uuid4()
    applied = []
    for event_type, expected in [
        (TaskEventType.task_created, (1, 0, 0, GenerationState.generating)),
        (TaskEventType.task_completed, (0, 1, 0, GenerationState.generated)),
    ]:
        event = task_event(owner, prompt.id, task_id, event_type)
        first = await publish(js, event)
        again = await publish(js, event)  # inside the duplicate window: JetStream drops it
        # Same event under another message id (e.g. republished after the window): the
        # stream keeps it, the inbox must drop it.
        other_id = await publish(js, event, msg_id=f"republished-{event.id}")
        assert [bool(ack.duplicate) for ack in (first, again, other_id)] == [False, True, False]
        await consumed()
        assert counters(await current(rpc, prompt)) == expected
        applied.append(event)

    messages = await updates.wait_for(2)
    await asyncio.sleep(0.5)  # nothing more may come
    assert len(updates.messages) == 2
    assert [m.body["prompt"]["generation_state"] for m in messages] == ["generating", "generated"]
    assert all(m.msg_id == m.body["id"] for m in messages)
    final = await current(rpc, prompt)
    assert messages[-1].body["prompt"] == final.model_dump(mode="json")

    async with session_factory() as session:
        claimed = set(
            await session.scalars(
                select(inbox.c.message_id).where(
                    inbox.c.consumer == TASK_EVENTS_CONSUMER,
                    inbox.c.message_id.in_([str(e.id) for e in applied]),
                )
            )
        )
    assert claimed == {str(e.id) for e in applied}


async def test_events_of_many_tasks_at_once_count_exactly(rpc, js, consumed):
    owner = uuid.uuid4()
    prompt = await new_prompt(rpc, owner)
    ends = [
        *[TaskEventType.task_completed] * 5,
        *[TaskEventType.task_failed] * 3,
        *[TaskEventType.task_cancelled] * 2,
        *[None] * 4,
    ]
    events = []
    for end in ends:
        task_id = uuid.uuid4()
        events.append(task_event(owner, prompt.id, task_id, TaskEventType.task_created))
        events.append(task_event(owner, prompt.id, task_id, TaskEventType.task_progress))
        if end is not None:
            events.append(task_event(owner, prompt.id, task_id, end))
    random.Random(7).shuffle(events)  # ends may overtake their `created`
    await asyncio.gather(*(publish(js, e) for e in events))
    await consumed()
    assert counters(await current(rpc, prompt)) == (4, 5, 3, GenerationState.generating)


async def test_event_for_an_unknown_prompt_is_acked(js, consumed):
    owner = uuid.uuid4()
    await publish(js, task_event(owner, uuid.uuid4(), uuid.uuid4(), TaskEventType.task_created))
    await consumed(timeout=5)


async def test_malformed_event_is_terminated_not_retried(rpc, js, consumed):
    owner = uuid.uuid4()
    await js.publish(
        f"events.images.{owner}.task.created",
        b'{"id": "not an event"}',
        headers={"Nats-Msg-Id": str(uuid.uuid4())},
    )
    # A NAKed message would wait for redelivery and stay pending; a terminated one does not.
    await consumed(timeout=5)
    prompt = await new_prompt(rpc, owner)
    await publish(js, task_event(owner, prompt.id, uuid.uuid4(), TaskEventType.task_created))
    await consumed()
    assert (await current(rpc, prompt)).active_tasks == 1


@pytest.fixture
def private_nats_url(tmp_path) -> Iterator[str]:
    """A NATS server of its own: the service's durable consumer on the session server would
    otherwise take the messages."""
    with NatsServer(tmp_path / "nats") as server:
        yield server.url


async def test_failed_handling_is_retried_after_the_backoff_delay(
    settings, rpc, session_factory, private_nats_url
):
    owner = uuid.uuid4()
    prompt = await new_prompt(rpc, owner)
    attempts: list[float] = []

    class DatabaseDownTwice(PromptsUnitOfWork):
        async def claim(self, consumer: str, message_id: str) -> bool:
            attempts.append(time.monotonic())
            if len(attempts) <= 2:
                raise ConnectionError("the database is restarting")
            return await super().claim(consumer, message_id)

    nc = await nats.connect(private_nats_url)
    js = nc.jetstream()
    await provision_streams(js)
    # The language model is never asked here: a client that is never used.
    llm = build_llm(settings)
    deps = Dependencies(new_uow=lambda: DatabaseDownTwice(session_factory), clock=utcnow, llm=llm)
    broker = build_broker(
        PromptsSettings(database_url=settings.database_url, nats_url=private_nats_url), deps
    )
    await broker.start()
    try:
        await publish(js, task_event(owner, prompt.id, uuid.uuid4(), TaskEventType.task_created))
        async with asyncio.timeout(15):
            while True:
                info = await js.consumer_info("EVENTS", TASK_EVENTS_DURABLE)
                if len(attempts) >= 3 and info.num_ack_pending == 0 and info.num_pending == 0:
                    break
                await asyncio.sleep(0.05)
    finally:
        await broker.stop()
        await nc.drain()

    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= TASK_EVENTS_REDELIVERY.delay_after(1) * 0.9
    assert attempts[2] - attempts[1] >= TASK_EVENTS_REDELIVERY.delay_after(2) * 0.9
    assert (await current(rpc, prompt)).active_tasks == 1
