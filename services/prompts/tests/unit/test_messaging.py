"""The NATS edge, in memory (FastStream's TestNatsBroker): subjects, parsing, replies.

Acks, redelivery and the durable consumer need the real server: see the integration tests.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from faststream.nats import TestNatsBroker
from faststream.specification import AsyncAPI

from imagetron_contracts.models.common import RpcReply
from imagetron_contracts.models.images import TaskEventType
from imagetron_contracts.models.prompts import CreatePromptCommand, Prompt, PromptQuery
from imagetron_contracts.streams import (
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
from imagetron_prompts.bootstrap import build_broker
from imagetron_prompts.entrypoints.messaging import (
    TASK_EVENTS_DURABLE,
    TASK_EVENTS_REDELIVERY,
)
from imagetron_prompts.settings import PromptsSettings

ALICE = UUID("00000000-0000-4000-8000-00000000a11c")
BOB = UUID("00000000-0000-4000-8000-000000000b0b")


@pytest.fixture
async def broker(deps):
    broker = build_broker(PromptsSettings(), deps)
    async with TestNatsBroker(broker) as test_broker:
        yield test_broker


async def request(broker, subject: str, body: object) -> RpcReply:
    message = await broker.request(body, subject, timeout=1)
    return RpcReply.model_validate_json(message.body)


class TestRpc:
    async def test_create_answers_the_new_prompt(self, broker, store):
        reply = await request(
            broker,
            RPC_PROMPTS_CREATE,
            CreatePromptCommand(owner_id=ALICE, text="a lighthouse").model_dump(mode="json"),
        )
        assert reply.problem is None
        prompt = Prompt.model_validate(reply.result)
        assert prompt.text == "a lighthouse"
        assert prompt.id in store.committed.prompts

    async def test_malformed_request_is_answered_422(self, broker):
        reply = await request(broker, RPC_PROMPTS_CREATE, {"text": "no owner"})
        assert reply.problem is not None
        assert reply.problem.status == 422
        assert [e.loc for e in reply.problem.errors or []] == [["owner_id"]]

    async def test_another_owners_prompt_is_answered_404(self, broker, stored_prompt):
        prompt = stored_prompt(ALICE)
        query = PromptQuery(owner_id=BOB, prompt_id=prompt.id).model_dump(mode="json")
        for subject in (RPC_PROMPTS_GET, RPC_PROMPTS_PREPARE_GENERATION):
            reply = await request(broker, subject, query)
            assert reply.problem is not None
            assert reply.problem.status == 404, subject

    async def test_bad_cursor_is_answered_422(self, broker):
        reply = await request(
            broker, RPC_PROMPTS_LIST, {"owner_id": str(ALICE), "cursor": "garbage"}
        )
        assert reply.problem is not None
        assert reply.problem.status == 422


async def test_task_event_on_its_subject_reaches_the_prompt(
    broker, store, stored_prompt, task_event
):
    prompt = stored_prompt(ALICE)
    event = task_event(prompt.id, TaskEventType.task_created, task_id=uuid4(), owner_id=ALICE)
    await broker.publish(
        event.model_dump(mode="json"), f"events.images.{ALICE}.task.created", stream="EVENTS"
    )
    assert store.committed.prompts[prompt.id].active_tasks == 1


def test_retry_delays_grow_to_a_cap_over_about_an_hour():
    r = TASK_EVENTS_REDELIVERY
    delays = [r.delay_after(n) for n in range(1, r.max_deliver)]
    assert delays == sorted(delays)
    assert delays[0] == 1
    assert delays[-1] == r.max_delay_seconds
    assert 30 * 60 <= sum(delays) <= 3 * 60 * 60  # retried for half an hour to hours
    assert r.is_last(r.max_deliver)
    assert not r.is_last(r.max_deliver - 1)


def test_consumer_retries_a_finite_number_of_times_with_the_delays_sent_by_the_nak():
    config = TASK_EVENTS_REDELIVERY.consumer_config(TASK_EVENTS_DURABLE)
    assert config.durable_name == "prompts-task-events"
    assert config.max_deliver == TASK_EVENTS_REDELIVERY.max_deliver
    assert config.ack_wait is not None
    assert config.ack_wait >= 10
    # A `backoff` list would make JetStream measure NAK delays from backoff[0] and stretch them.
    assert config.backoff is None


def test_asyncapi_documents_the_contract_subjects():
    """`build_broker` needs no connection and documents what asyncapi.yaml says prompts does."""
    broker = build_broker(PromptsSettings())
    schema = AsyncAPI(broker, schema_version="3.0.0").to_specification().to_jsonable()
    operations = {
        name: (
            op["action"],
            schema["channels"][op["channel"]["$ref"].split("/")[-1]]["address"],
        )
        for name, op in schema["operations"].items()
    }
    assert operations == {
        "prompts_handle_rpc_prompts_create": ("receive", RPC_PROMPTS_CREATE),
        "prompts_handle_rpc_prompts_get": ("receive", RPC_PROMPTS_GET),
        "prompts_handle_rpc_prompts_list": ("receive", RPC_PROMPTS_LIST),
        "prompts_handle_rpc_prompts_prepare_generation": (
            "receive",
            RPC_PROMPTS_PREPARE_GENERATION,
        ),
        "prompts_handle_rpc_prompts_generation_reserve": (
            "receive",
            RPC_PROMPTS_GENERATION_RESERVE,
        ),
        "prompts_handle_rpc_prompts_generation_release": (
            "receive",
            RPC_PROMPTS_GENERATION_RELEASE,
        ),
        "prompts_handle_rpc_prompts_update": ("receive", RPC_PROMPTS_UPDATE),
        "prompts_handle_rpc_prompts_delete": ("receive", RPC_PROMPTS_DELETE),
        "prompts_handle_rpc_prompts_set_status": ("receive", RPC_PROMPTS_SET_STATUS),
        "prompts_handle_rpc_prompts_generate": ("receive", RPC_PROMPTS_GENERATE),
        "prompts_handle_rpc_prompts_retitle": ("receive", RPC_PROMPTS_RETITLE),
        "prompts_handle_rpc_prompts_suggest_metadata": ("receive", RPC_PROMPTS_SUGGEST_METADATA),
        "prompts_handle_rpc_prompts_chats_start": ("receive", RPC_PROMPTS_CHATS_START),
        "prompts_handle_rpc_prompts_chats_continue": ("receive", RPC_PROMPTS_CHATS_CONTINUE),
        "prompts_handle_rpc_prompts_chats_get": ("receive", RPC_PROMPTS_CHATS_GET),
        "prompts_handle_rpc_prompts_chats_list": ("receive", RPC_PROMPTS_CHATS_LIST),
        "prompts_handle_rpc_prompts_chats_delete": ("receive", RPC_PROMPTS_CHATS_DELETE),
        "prompts_follow_task_events": ("receive", "events.images.{owner_id}.task.{event_type}"),
        "prompts_emit_prompt_events": ("send", "events.prompts.{owner_id}.prompt.{event_type}"),
        "prompts_emit_chat_events": ("send", "events.prompts.{owner_id}.chat.{event_type}"),
    }
    payloads = {
        name.split(":")[0]: message["payload"]["$ref"].split("/")[-1]
        for name, message in schema["components"]["messages"].items()
    }
    assert payloads == {
        "prompts_handle_rpc_prompts_create": "CreatePromptCommand",
        "prompts_handle_rpc_prompts_get": "PromptQuery",
        "prompts_handle_rpc_prompts_list": "ListPromptsQuery",
        "prompts_handle_rpc_prompts_prepare_generation": "PromptQuery",
        "prompts_handle_rpc_prompts_generation_reserve": "GenerationReservation",
        "prompts_handle_rpc_prompts_generation_release": "GenerationReservation",
        "prompts_handle_rpc_prompts_update": "UpdatePromptCommand",
        "prompts_handle_rpc_prompts_delete": "PromptQuery",
        "prompts_handle_rpc_prompts_set_status": "SetPromptStatusCommand",
        "prompts_handle_rpc_prompts_generate": "GeneratePromptsCommand",
        "prompts_handle_rpc_prompts_retitle": "PromptQuery",
        "prompts_handle_rpc_prompts_suggest_metadata": "SuggestStockMetadataCommand",
        "prompts_handle_rpc_prompts_chats_start": "StartChatCommand",
        "prompts_handle_rpc_prompts_chats_continue": "ContinueChatCommand",
        "prompts_handle_rpc_prompts_chats_get": "ChatQuery",
        "prompts_handle_rpc_prompts_chats_list": "ListChatsQuery",
        "prompts_handle_rpc_prompts_chats_delete": "ChatQuery",
        "prompts_follow_task_events": "TaskEvent",
        "prompts_emit_prompt_events": "PromptEvent",
        "prompts_emit_chat_events": "ChatEvent",
    }
