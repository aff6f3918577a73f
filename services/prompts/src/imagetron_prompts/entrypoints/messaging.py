"""The prompts service on NATS: request/reply handlers for the gateway and the durable
consumer of task events.

RPC subscribers share the queue group `prompts`, so any number of replicas answer each
request once. The ones that wait for the language model (chats start/continue, generate,
retitle, suggest_metadata) handle up to `llm_concurrency` requests at once each, so one slow
answer does not hold up the others; the rest answer one at a time per subject, fast. Task
events come from the `EVENTS` stream through one durable pull consumer shared by all
replicas; the inbox (not the consumer) makes applying them exactly-once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.exceptions import NackMessage, RejectMessage
from faststream.message import StreamMessage
from faststream.nats import NatsBroker
from pydantic import ValidationError

from imagetron_contracts.models.chats import (
    ChatEvent,
)
from imagetron_contracts.models.images import TaskEvent
from imagetron_contracts.models.prompts import (
    PromptEvent,
)
from imagetron_contracts.streams import (
    EVENTS_STREAM,
    RPC_PROMPTS_CHATS_CONTINUE,
    RPC_PROMPTS_CHATS_DELETE,
    RPC_PROMPTS_CHATS_GET,
    RPC_PROMPTS_CHATS_LIST,
    RPC_PROMPTS_CHATS_START,
    RPC_PROMPTS_CREATE,
    RPC_PROMPTS_DELETE,
    RPC_PROMPTS_GENERATE,
    RPC_PROMPTS_GENERATION_RELEASE,
    RPC_PROMPTS_GENERATION_RESERVE,
    RPC_PROMPTS_GET,
    RPC_PROMPTS_LIST,
    RPC_PROMPTS_PREPARE_GENERATION,
    RPC_PROMPTS_RETITLE,
    RPC_PROMPTS_SET_STATUS,
    RPC_PROMPTS_SUGGEST_METADATA,
    RPC_PROMPTS_UPDATE,
)
from imagetron_platform.messaging import JetStreamMessage, Redelivery, jstream, one_message_pulls
from imagetron_platform.metrics import INBOX_DUPLICATES
from imagetron_platform.rpc import RpcRoute, register_rpc
from imagetron_prompts.app import chats, prompts, workshop
from imagetron_prompts.app.dependencies import Dependencies
from imagetron_prompts.app.prompts import TASK_EVENTS_CONSUMER, TaskEventOutcome

log = logging.getLogger(__name__)

SERVICE = "prompts"
RPC_QUEUE = "prompts"

# asyncapi channel `events_images_task`; as a filter: events.images.*.task.*
TASK_EVENTS_SUBJECT = "events.images.{owner_id}.task.{event_type}"
TASK_EVENTS_DURABLE = TASK_EVENTS_CONSUMER
# Handled concurrently, each on its own database connection (see `database_pool_size`).
TASK_EVENTS_CONCURRENCY = 8
# About an hour of retries (1, 2, 4 … 300 s) before JetStream gives up -- enough to ride out
# a database restart; `ack_wait` also bounds how long handling one event may take.
TASK_EVENTS_REDELIVERY = Redelivery(max_deliver=20, ack_wait_seconds=30.0)

# asyncapi channels `events_prompts_prompt` and `events_prompts_chat`; events go out
# through the outbox relay.
PROMPT_EVENTS_SUBJECT = "events.prompts.{owner_id}.prompt.{event_type}"
CHAT_EVENTS_SUBJECT = "events.prompts.{owner_id}.chat.{event_type}"


async def _decode_task_event(
    msg: StreamMessage[Any], decode: Callable[[StreamMessage[Any]], Awaitable[Any]]
) -> Any:
    """A body that is not a TaskEvent never will be: terminate it instead of retrying."""
    body = await decode(msg)
    try:
        TaskEvent.model_validate(body)
    except ValidationError as exc:
        log.error(
            "malformed task event rejected",
            extra={"subject": msg.raw_message.subject, "error": str(exc)},
        )
        raise RejectMessage from exc
    return body


def rpc_routes(llm_concurrency: int) -> tuple[RpcRoute, ...]:
    """The gateway's requests and the handlers that answer them (dependencies by name).
    Those that wait for the language model answer `llm_concurrency` requests at once."""
    llm = llm_concurrency
    return (
        RpcRoute(RPC_PROMPTS_CREATE, prompts.create_prompt),
        RpcRoute(RPC_PROMPTS_GET, prompts.get_prompt),
        RpcRoute(RPC_PROMPTS_LIST, prompts.list_prompts),
        RpcRoute(RPC_PROMPTS_PREPARE_GENERATION, prompts.prepare_generation),
        RpcRoute(RPC_PROMPTS_GENERATION_RESERVE, prompts.reserve_generation),
        RpcRoute(RPC_PROMPTS_GENERATION_RELEASE, prompts.release_generation),
        RpcRoute(RPC_PROMPTS_UPDATE, prompts.update_prompt),
        RpcRoute(RPC_PROMPTS_DELETE, prompts.delete_prompt),
        RpcRoute(RPC_PROMPTS_SET_STATUS, prompts.set_status),
        RpcRoute(RPC_PROMPTS_GENERATE, workshop.generate_prompts, max_workers=llm),
        RpcRoute(RPC_PROMPTS_RETITLE, workshop.retitle_prompt, max_workers=llm),
        RpcRoute(RPC_PROMPTS_SUGGEST_METADATA, workshop.suggest_stock_metadata, max_workers=llm),
        RpcRoute(RPC_PROMPTS_CHATS_START, chats.start_chat, max_workers=llm),
        RpcRoute(RPC_PROMPTS_CHATS_CONTINUE, chats.continue_chat, max_workers=llm),
        RpcRoute(RPC_PROMPTS_CHATS_GET, chats.get_chat),
        RpcRoute(RPC_PROMPTS_CHATS_LIST, chats.list_chats),
        RpcRoute(RPC_PROMPTS_CHATS_DELETE, chats.delete_chat),
    )


def register_subscribers(
    broker: NatsBroker, deps: Dependencies, *, llm_concurrency: int = 8
) -> None:
    register_rpc(broker, RPC_QUEUE, rpc_routes(llm_concurrency), deps)

    @broker.subscriber(
        TASK_EVENTS_SUBJECT,
        stream=jstream(EVENTS_STREAM),
        durable=TASK_EVENTS_DURABLE,
        config=TASK_EVENTS_REDELIVERY.consumer_config(TASK_EVENTS_DURABLE),
        pull_sub=one_message_pulls(),
        max_workers=TASK_EVENTS_CONCURRENCY,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_decode_task_event,
        title="prompts_follow_task_events",
        description="Keep prompt generation state (inbox).",
    )
    async def follow_task_events(event: TaskEvent, msg: JetStreamMessage) -> None:
        try:
            outcome = await prompts.apply_task_event(event, deps.new_uow(), deps.clock)
        except Exception as exc:
            delivered = msg.raw_message.metadata.num_delivered or 1
            delay = TASK_EVENTS_REDELIVERY.delay_after(delivered)
            context = {"event_id": str(event.id), "event_type": event.type.value}
            if TASK_EVENTS_REDELIVERY.is_last(delivered):
                # JetStream delivers it no more: the prompt's counters miss this event.
                log.error(
                    "applying a task event failed for the last time (%d deliveries)",
                    delivered,
                    exc_info=True,
                    extra=context,
                )
            else:
                log.warning(
                    "applying a task event failed (delivery %d of %d); retrying in %gs",
                    delivered,
                    TASK_EVENTS_REDELIVERY.max_deliver,
                    delay,
                    exc_info=True,
                    extra=context,
                )
            raise NackMessage(delay=delay) from exc
        if outcome is TaskEventOutcome.DUPLICATE:
            INBOX_DUPLICATES.labels(SERVICE, TASK_EVENTS_CONSUMER).inc()
        log.debug(
            "task event %s",
            outcome.value,
            extra={"event_id": str(event.id), "event_type": event.type.value},
        )

    # Documents what the outbox relay publishes (the relay itself uses `broker.publish`).
    broker.publisher(
        PROMPT_EVENTS_SUBJECT,
        schema=PromptEvent,
        title="prompts_emit_prompt_events",
        description="Prompt events, via the outbox.",
    )
    broker.publisher(
        CHAT_EVENTS_SUBJECT,
        schema=ChatEvent,
        title="prompts_emit_chat_events",
        description="Subject chat events, via the outbox.",
    )
