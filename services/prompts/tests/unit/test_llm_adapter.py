"""The OpenAI adapter over the real SDK, against a scripted OpenAI-compatible answer: the
strict schema it sends and how it judges each completion. Against a real server (the
sandbox): integration/test_llm_sandbox.py."""

from __future__ import annotations

import json

import httpx2
import pytest
from openai import AsyncOpenAI

from imagetron_prompts.adapters.llm import OpenAiLlm
from imagetron_prompts.app.assistant import (
    STOCK_TITLE_PATTERN,
    TitleIdeas,
    prompt_drafts_for,
    subject_ideas_for,
)
from imagetron_prompts.app.ports import LlmError, LlmMessage, LlmOutcome

GOOD = '{"titles": ["Ripe pear on linen", "A single pear", "Pear still life"]}'
ASK = [LlmMessage("user", "titles, please")]


def walk(node):
    """Every schema in `node` (not the name-to-schema maps `properties` and `$defs`)."""
    if isinstance(node, list):
        for value in node:
            yield from walk(value)
    elif isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    yield from walk(sub)
            else:
                yield from walk(value)


def completion(content=None, *, refusal=None, finish_reason="stop", choices=True):
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ]
        if choices
        else [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class Server:
    """Answers each request with the next scripted completion and keeps the requests."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[dict] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(json.loads(request.content))
        return httpx2.Response(200, json=self.answers.pop(0))


def llm(server: Server, attempts: int = 1) -> OpenAiLlm:
    client = AsyncOpenAI(
        base_url="http://llm.test/v1",
        api_key="k",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server)),
    )
    return OpenAiLlm(client, model="m", answer_attempts=attempts, deadline_seconds=5)


@pytest.mark.parametrize("model", [subject_ideas_for(None), prompt_drafts_for(3), TitleIdeas])
async def test_the_schema_sent_is_strict_and_names_the_answer(model):
    server = Server(completion("{}"))
    with pytest.raises(LlmError):
        await llm(server).answer(ASK, model)
    response_format = server.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == model.__name__
    schema = response_format["json_schema"]["schema"]
    objects = [n for n in walk(schema) if n.get("type") == "object"]
    assert objects
    for node in objects:
        assert node["additionalProperties"] is False
        assert set(node["required"]) == set(node["properties"])
    for node in walk(schema):
        assert not {"minLength", "maxLength", "title", "default"} & set(node), node


async def test_counts_and_title_rules_survive_as_keywords_strict_mode_accepts():
    server = Server(completion("{}"))
    with pytest.raises(LlmError):
        await llm(server).answer(ASK, prompt_drafts_for(3))
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    prompts = schema["properties"]["prompts"]
    assert (prompts["minItems"], prompts["maxItems"]) == (3, 3)
    assert [n["pattern"] for n in walk(schema) if "pattern" in n] == [STOCK_TITLE_PATTERN]


@pytest.mark.parametrize(
    ("made", "outcome", "reason"),
    [
        (completion(GOOD[:20]), LlmOutcome.MALFORMED, "not valid JSON"),
        (completion('{"titles": ["a, b", "c", "d"]}'), LlmOutcome.MALFORMED, "titles.0"),
        (completion('{"titles": []}'), LlmOutcome.MALFORMED, "does not match the schema"),
        (completion(None, refusal="I can't"), LlmOutcome.REFUSED, "I can't"),
        (completion(GOOD, finish_reason="content_filter"), LlmOutcome.REFUSED, "content filter"),
        (completion(GOOD[:30], finish_reason="length"), LlmOutcome.TRUNCATED, "token limit"),
        (completion(""), LlmOutcome.MALFORMED, "empty"),
        (completion(choices=False), LlmOutcome.MALFORMED, "no choices"),
    ],
)
async def test_unusable_completions_say_why_and_still_cost_their_tokens(made, outcome, reason):
    server = Server(made, made)
    with pytest.raises(LlmError) as caught:
        await llm(server, attempts=2).answer(ASK, TitleIdeas)
    assert caught.value.outcome is outcome
    assert reason in caught.value.detail
    assert len(server.requests) == 2
    assert caught.value.usage.attempts == 2
    assert caught.value.usage.total_tokens == 30


async def test_a_valid_answer_is_parsed_then_checked():
    answer = await llm(Server(completion(GOOD))).answer(ASK, TitleIdeas)
    assert isinstance(answer.value, TitleIdeas)
    assert answer.value.titles[0] == "Ripe pear on linen"
    assert (answer.usage.attempts, answer.usage.prompt_tokens) == (1, 10)

    def reject(answer):
        raise ValueError("not today")

    with pytest.raises(LlmError) as caught:
        await llm(Server(completion(GOOD))).answer(ASK, TitleIdeas, check=reject)
    assert caught.value.outcome is LlmOutcome.MALFORMED
    assert "the answer breaks a rule: not today" in caught.value.detail


async def test_an_unusable_answer_is_asked_for_again():
    server = Server(completion(None, refusal="no"), completion(GOOD))
    answer = await llm(server, attempts=2).answer(ASK, TitleIdeas)
    assert answer.value.titles[2] == "Pear still life"
    assert answer.usage.attempts == 2
