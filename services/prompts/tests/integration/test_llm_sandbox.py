"""The OpenAI adapter against a real OpenAI-compatible server (the sandbox, in uvicorn),
and the errors its failures become, from the adapter up to the RPC reply the gateway gets.

The documented errors: a malformed, refused, rate-limited (429) or failing (5xx) model is a
502 whose detail names the cause; a model that does not answer in time is a 504. Either way
nothing is saved. Fault tokens (`--sandbox-chat-*`) in the last user message steer the
sandbox; `=N` makes only the first N attempts of that exact request faulty."""

from __future__ import annotations

import time
import uuid

import pytest
from openai import AsyncOpenAI
from sqlalchemy import select

from imagetron.servers import free_port
from imagetron.testing import serving
from imagetron_contracts.models.chats import (
    Chat,
    ChatPage,
    ListChatsQuery,
    StartChatCommand,
)
from imagetron_contracts.models.prompts import StockMetadataSuggestion, SuggestStockMetadataCommand
from imagetron_contracts.streams import (
    RPC_PROMPTS_CHATS_LIST,
    RPC_PROMPTS_CHATS_START,
    RPC_PROMPTS_SUGGEST_METADATA,
)
from imagetron_platform.errors import BadGateway, ServiceTimeout
from imagetron_prompts.adapters.llm import OpenAiLlm
from imagetron_prompts.adapters.tables import llm_calls
from imagetron_prompts.app.assistant import TitleIdeas, problem_for, subject_ideas_for
from imagetron_prompts.app.ports import LlmError, LlmMessage, LlmOutcome
from imagetron_sandbox import SandboxSettings
from imagetron_sandbox import create_app as create_sandbox
from imagetron_stock.rules import is_stock_ready_title

from .support import LLM_DEADLINE_SECONDS, LLM_TIMEOUT_SECONDS

pytestmark = pytest.mark.integration


def adapter(base_url: str, *, timeout=5.0, max_retries=1, attempts=3, deadline=20.0, key="k"):
    client = AsyncOpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)
    return OpenAiLlm(
        client, model="gpt-4o-mini", answer_attempts=attempts, deadline_seconds=deadline
    )


def ask_titles(text: str) -> list[LlmMessage]:
    return [LlmMessage("system", "Titles, please."), LlmMessage("user", text)]


async def failure_of(llm: OpenAiLlm, text: str) -> LlmError:
    with pytest.raises(LlmError) as caught:
        await llm.answer(ask_titles(text), TitleIdeas)
    return caught.value


class TestAdapter:
    async def test_a_structured_answer_is_validated_and_its_tokens_counted(self, sandbox_url):
        llm = adapter(f"{sandbox_url}/v1")
        answer = await llm.answer(ask_titles("a ripe pear on linen"), TitleIdeas)
        assert len(answer.value.titles) == 3
        assert all(len(t) <= 70 and "," not in t for t in answer.value.titles)
        assert answer.usage.attempts == 1
        assert answer.usage.prompt_tokens > 0
        assert answer.usage.completion_tokens > 0
        assert answer.usage.model == "gpt-4o-mini"

    async def test_exact_counts_are_asked_for_through_the_schema(self, sandbox_url):
        llm = adapter(f"{sandbox_url}/v1")
        answer = await llm.answer(ask_titles("pears"), subject_ideas_for(7))
        assert len(answer.value.subjects) == 7

    async def test_a_malformed_answer_is_asked_for_again(self, sandbox_url):
        llm = adapter(f"{sandbox_url}/v1")
        answer = await llm.answer(ask_titles("pears --sandbox-chat-malformed=1"), TitleIdeas)
        assert answer.usage.attempts == 2
        # The broken answer's tokens count too.
        single = await llm.answer(ask_titles("pears"), TitleIdeas)
        assert answer.usage.total_tokens > single.usage.total_tokens

    async def test_answers_malformed_every_time_are_a_502_naming_it(self, sandbox_url):
        error = await failure_of(adapter(f"{sandbox_url}/v1"), "pears --sandbox-chat-malformed")
        assert error.outcome is LlmOutcome.MALFORMED
        assert error.usage.attempts == 3
        assert "not valid JSON" in error.detail
        problem = problem_for(error)
        assert isinstance(problem, BadGateway)
        assert problem.status == 502
        assert "malformed" in problem.detail

    async def test_a_refusal_once_is_asked_again_and_always_is_a_502(self, sandbox_url):
        llm = adapter(f"{sandbox_url}/v1")
        answer = await llm.answer(ask_titles("pears --sandbox-chat-refusal=2"), TitleIdeas)
        assert answer.usage.attempts == 3
        error = await failure_of(llm, "pears --sandbox-chat-refusal")
        assert error.outcome is LlmOutcome.REFUSED
        assert "can't help" in error.detail
        assert problem_for(error).status == 502
        assert "refused" in problem_for(error).detail

    async def test_a_429_is_retried_after_its_retry_after(self, sandbox_url):
        llm = adapter(f"{sandbox_url}/v1", max_retries=1)
        started = time.monotonic()
        answer = await llm.answer(ask_titles("pears --sandbox-chat-429=1"), TitleIdeas)
        assert time.monotonic() - started >= 0.9  # the sandbox says `retry-after: 1`
        assert answer.usage.attempts == 1  # one completion: the 429 had none

    async def test_a_429_that_persists_is_a_502_naming_the_rate_limit(self, sandbox_url):
        error = await failure_of(
            adapter(f"{sandbox_url}/v1", max_retries=1), "pears --sandbox-chat-429"
        )
        assert error.outcome is LlmOutcome.RATE_LIMITED
        assert "429" in error.detail
        assert problem_for(error).status == 502
        assert "rate-limiting" in problem_for(error).detail

    async def test_a_failing_server_is_a_502(self, sandbox_url):
        error = await failure_of(
            adapter(f"{sandbox_url}/v1", max_retries=0), "pears --sandbox-chat-500"
        )
        assert error.outcome is LlmOutcome.UPSTREAM_ERROR
        assert "HTTP 500" in error.detail
        assert problem_for(error).status == 502

    async def test_a_slow_server_is_a_504(self, sandbox_url):
        llm = adapter(f"{sandbox_url}/v1", timeout=0.3, max_retries=0)
        started = time.monotonic()
        error = await failure_of(llm, "pears --sandbox-chat-delay=3000")
        assert time.monotonic() - started < 2
        assert error.outcome is LlmOutcome.TIMEOUT
        problem = problem_for(error)
        assert isinstance(problem, ServiceTimeout)
        assert problem.status == 504
        assert "did not answer in time" in problem.detail

    async def test_the_overall_deadline_bounds_retries_of_slow_answers(self, sandbox_url):
        llm = adapter(f"{sandbox_url}/v1", timeout=5.0, max_retries=3, deadline=0.5)
        started = time.monotonic()
        error = await failure_of(llm, "pears --sandbox-chat-delay=2000")
        assert time.monotonic() - started < 1.5
        assert error.outcome is LlmOutcome.TIMEOUT
        assert "deadline" in error.detail

    async def test_an_unreachable_server_is_a_502(self):
        error = await failure_of(
            adapter(f"http://127.0.0.1:{free_port()}/v1", max_retries=0), "pears"
        )
        assert error.outcome is LlmOutcome.UNREACHABLE
        assert problem_for(error).status == 502

    async def test_a_refused_request_is_not_retried_and_is_a_502(self):
        app = create_sandbox(SandboxSettings(openai_api_key="the-right-key", log_level="warning"))
        async with serving(app) as url:
            error = await failure_of(adapter(f"{url}/v1", key="a-wrong-key"), "pears")
        assert error.outcome is LlmOutcome.REJECTED
        assert "401" in error.detail
        assert "IMAGETRON_LLM" in problem_for(error).detail


async def start_chat(rpc, owner, brief) -> Chat:
    return await rpc.call(
        RPC_PROMPTS_CHATS_START, StartChatCommand(owner_id=owner, brief=brief), Chat
    )


async def ledger(session_factory, owner) -> list[tuple[str, int]]:
    async with session_factory() as session:
        rows = await session.execute(
            select(llm_calls.c.outcome, llm_calls.c.attempts)
            .where(llm_calls.c.owner_id == owner)
            .order_by(llm_calls.c.created_at)
        )
        return [(row.outcome.value, row.attempts) for row in rows]


@pytest.mark.parametrize(
    ("fault", "problem", "cause", "outcome"),
    [
        ("--sandbox-chat-malformed", BadGateway, "its answer was malformed", "malformed"),
        ("--sandbox-chat-refusal", BadGateway, "it refused to answer", "refused"),
        ("--sandbox-chat-429", BadGateway, "rate-limiting us (HTTP 429)", "rate_limited"),
        ("--sandbox-chat-500", BadGateway, "the provider failed (HTTP 5xx)", "upstream_error"),
        (
            f"--sandbox-chat-delay={int(LLM_TIMEOUT_SECONDS * 1000) + 500}",
            ServiceTimeout,
            "did not answer in time",
            "timeout",
        ),
    ],
    ids=["malformed", "refusal", "429", "500", "timeout"],
)
async def test_the_service_answers_the_documented_problem_and_saves_nothing(
    rpc, session_factory, fault, problem, cause, outcome
):
    owner = uuid.uuid4()
    started = time.monotonic()
    with pytest.raises(problem) as caught:
        await start_chat(rpc, owner, f"autumn still lifes {fault}")
    assert time.monotonic() - started < LLM_DEADLINE_SECONDS + 1
    assert cause in caught.value.detail
    assert "Nothing was saved" in caught.value.detail
    page = await rpc.call(RPC_PROMPTS_CHATS_LIST, ListChatsQuery(owner_id=owner), ChatPage)
    assert page.items == []
    [(recorded, attempts)] = await ledger(session_factory, owner)
    assert recorded == outcome
    if outcome in ("malformed", "refused"):
        assert attempts == 3  # llm_answer_attempts


async def test_a_fault_that_clears_on_retry_saves_the_chat_once(rpc, session_factory):
    owner = uuid.uuid4()
    chat = await start_chat(rpc, owner, "autumn still lifes --sandbox-chat-malformed=1")
    assert chat.message_count == 2
    usage = chat.messages[1].usage
    assert usage is not None
    assert usage.attempts == 2
    assert await ledger(session_factory, owner) == [("ok", 2)]


async def test_stock_metadata_from_the_sandbox_is_schema_valid_and_in_the_ledger(
    rpc, session_factory
):
    owner, prompt_id = uuid.uuid4(), uuid.uuid4()
    suggestion = await rpc.call(
        RPC_PROMPTS_SUGGEST_METADATA,
        SuggestStockMetadataCommand(
            owner_id=owner,
            prompt_id=prompt_id,
            prompt_text="a ripe pear on a linen cloth, morning light",
            title="Ripe pear on linen",
        ),
        StockMetadataSuggestion,
    )
    assert is_stock_ready_title(suggestion.title)
    assert 1 <= len(suggestion.keywords) <= 49
    assert not [k for k in suggestion.keywords if "," in k or not k.strip()]
    assert len({k.casefold() for k in suggestion.keywords}) == len(suggestion.keywords)
    assert 1 <= suggestion.category <= 21
    assert await ledger(session_factory, owner) == [("ok", 1)]
