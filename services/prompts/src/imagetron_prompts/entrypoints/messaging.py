"""The prompts service on NATS: request/reply handlers for the gateway and the durable
consumer of task events.

RPC subscribers share the queue group `prompts`, so any number of replicas answer each
request once. The ones that wait for the language model (chats start/continue, generate,
retitle) handle up to `llm_concurrency` requests at once each, so one slow answer does not
hold up the others; the rest answer one at a time per subject, fast. Task events come from
the `EVENTS` stream through one durable pull consumer shared by all replicas; the inbox
(not the consumer) makes applying them exactly-once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.exceptions import NackMessage, RejectMessage
from faststream.message import StreamMessage
from faststream.nats import NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from pydantic import ValidationError

from imagetron_contracts.models.chats import (
    Chat,
    ChatEvent,
    ChatPage,
    ChatQuery,
    ChatSummary,
    ContinueChatCommand,
    ListChatsQuery,
    StartChatCommand,
)
from imagetron_contracts.models.images import TaskEvent
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    GeneratedPrompts,
    GeneratePromptsCommand,
    ListPromptsQuery,
    Prompt,
    PromptEvent,
    PromptPage,
    PromptQuery,
    SetPromptStatusCommand,
    UpdatePromptCommand,
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
    RPC_PROMPTS_GET,
    RPC_PROMPTS_LIST,
    RPC_PROMPTS_PREPARE_GENERATION,
    RPC_PROMPTS_RETITLE,
    RPC_PROMPTS_SET_STATUS,
    RPC_PROMPTS_UPDATE,
)
from imagetron_platform.messaging import Redelivery, jstream
from imagetron_platform.metrics import INBOX_DUPLICATES
from imagetron_platform.rpc import rpc_handler
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
TASK_EVENTS_BATCH = 8
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


def register_subscribers(
    broker: NatsBroker, deps: Dependencies, *, llm_concurrency: int = 8
) -> None:
    @broker.subscriber(
        RPC_PROMPTS_CREATE,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_create",
        description="Create a prompt. Replies with an RpcReply whose result is a Prompt.",
    )
    @rpc_handler
    async def create_prompt(cmd: CreatePromptCommand) -> Prompt:
        return await prompts.create_prompt(cmd, deps.new_uow(), deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_GET,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_get",
        description="Read one prompt. Replies with an RpcReply whose result is a Prompt.",
    )
    @rpc_handler
    async def get_prompt(query: PromptQuery) -> Prompt:
        return await prompts.get_prompt(query, deps.new_uow())

    @broker.subscriber(
        RPC_PROMPTS_LIST,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_list",
        description="List prompts. Replies with an RpcReply whose result is a PromptPage.",
    )
    @rpc_handler
    async def list_prompts(query: ListPromptsQuery) -> PromptPage:
        return await prompts.list_prompts(query, deps.new_uow())

    @broker.subscriber(
        RPC_PROMPTS_PREPARE_GENERATION,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_prepare_generation",
        description="Check that a prompt may be rendered now (404 unknown, 409 archived) and "
        "return it. Replies with an RpcReply whose result is a Prompt.",
    )
    @rpc_handler
    async def prepare_generation(query: PromptQuery) -> Prompt:
        return await prompts.prepare_generation(query, deps.new_uow())

    @broker.subscriber(
        RPC_PROMPTS_UPDATE,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_update",
        description="Edit a prompt's text and title. Replies with an RpcReply whose result is "
        "the Prompt.",
    )
    @rpc_handler
    async def update_prompt(cmd: UpdatePromptCommand) -> Prompt:
        return await prompts.update_prompt(cmd, deps.new_uow(), deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_DELETE,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_delete",
        description="Delete a prompt (409 while it has active tasks). Replies with an RpcReply "
        "whose result is the deleted Prompt.",
    )
    @rpc_handler
    async def delete_prompt(query: PromptQuery) -> Prompt:
        return await prompts.delete_prompt(query, deps.new_uow(), deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_SET_STATUS,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_set_status",
        description="Set a prompt's manual status. Replies with an RpcReply whose result is "
        "the Prompt.",
    )
    @rpc_handler
    async def set_status(cmd: SetPromptStatusCommand) -> Prompt:
        return await prompts.set_status(cmd, deps.new_uow(), deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_GENERATE,
        queue=RPC_QUEUE,
        max_workers=llm_concurrency,
        title="prompts_handle_rpc_prompts_generate",
        description="Have the language model write prompts for a subject and store them. "
        "Replies with an RpcReply whose result is GeneratedPrompts.",
    )
    @rpc_handler
    async def generate_prompts(cmd: GeneratePromptsCommand) -> GeneratedPrompts:
        return await workshop.generate_prompts(cmd, deps.new_uow, deps.llm, deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_RETITLE,
        queue=RPC_QUEUE,
        max_workers=llm_concurrency,
        title="prompts_handle_rpc_prompts_retitle",
        description="Replace a prompt's title with a different one from the language model. "
        "Replies with an RpcReply whose result is the Prompt.",
    )
    @rpc_handler
    async def retitle_prompt(query: PromptQuery) -> Prompt:
        return await workshop.retitle_prompt(query, deps.new_uow, deps.llm, deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_CHATS_START,
        queue=RPC_QUEUE,
        max_workers=llm_concurrency,
        title="prompts_handle_rpc_prompts_chats_start",
        description="Start a subject chat (the language model answers the brief). Replies "
        "with an RpcReply whose result is the Chat.",
    )
    @rpc_handler
    async def start_chat(cmd: StartChatCommand) -> Chat:
        return await chats.start_chat(cmd, deps.new_uow, deps.llm, deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_CHATS_CONTINUE,
        queue=RPC_QUEUE,
        max_workers=llm_concurrency,
        title="prompts_handle_rpc_prompts_chats_continue",
        description="Continue a subject chat (the language model answers). Replies with an "
        "RpcReply whose result is the Chat.",
    )
    @rpc_handler
    async def continue_chat(cmd: ContinueChatCommand) -> Chat:
        return await chats.continue_chat(cmd, deps.new_uow, deps.llm, deps.clock)

    @broker.subscriber(
        RPC_PROMPTS_CHATS_GET,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_chats_get",
        description="Read one subject chat with its history. Replies with an RpcReply whose "
        "result is the Chat.",
    )
    @rpc_handler
    async def get_chat(query: ChatQuery) -> Chat:
        return await chats.get_chat(query, deps.new_uow())

    @broker.subscriber(
        RPC_PROMPTS_CHATS_LIST,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_chats_list",
        description="List subject chats. Replies with an RpcReply whose result is a ChatPage.",
    )
    @rpc_handler
    async def list_chats(query: ListChatsQuery) -> ChatPage:
        return await chats.list_chats(query, deps.new_uow())

    @broker.subscriber(
        RPC_PROMPTS_CHATS_DELETE,
        queue=RPC_QUEUE,
        title="prompts_handle_rpc_prompts_chats_delete",
        description="Delete a subject chat. Replies with an RpcReply whose result is its last "
        "ChatSummary.",
    )
    @rpc_handler
    async def delete_chat(query: ChatQuery) -> ChatSummary:
        return await chats.delete_chat(query, deps.new_uow(), deps.clock)

    @broker.subscriber(
        TASK_EVENTS_SUBJECT,
        stream=jstream(EVENTS_STREAM),
        durable=TASK_EVENTS_DURABLE,
        config=TASK_EVENTS_REDELIVERY.consumer_config(TASK_EVENTS_DURABLE),
        pull_sub=PullSub(batch_size=TASK_EVENTS_BATCH, timeout=5.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_decode_task_event,
        title="prompts_follow_task_events",
        description="Keep prompt generation state (inbox).",
    )
    async def follow_task_events(event: TaskEvent, msg: NatsMessage) -> None:
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
