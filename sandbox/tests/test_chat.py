"""The OpenAI-compatible chat completions stand-in."""

from __future__ import annotations

import json
import time

import jsonschema
import pytest

PROMPTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["prompts", "mood"],
    "properties": {
        "prompts": {
            "type": "array",
            "minItems": 4,
            "maxItems": 4,
            "items": {"$ref": "#/$defs/prompt"},
        },
        "mood": {"type": "string", "enum": ["calm", "wild", "eerie"]},
    },
    "$defs": {
        "prompt": {
            "type": "object",
            "additionalProperties": False,
            "required": ["title", "prompt", "aspect_ratio", "weight", "seed", "tags"],
            "properties": {
                "title": {"type": "string", "maxLength": 24},
                "prompt": {"type": "string", "minLength": 20, "maxLength": 120},
                "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9", "2:3"]},
                "weight": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                "seed": {"type": "integer", "minimum": 10, "maximum": 20},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "note": {"type": ["string", "null"]},
            },
        }
    },
}


def body(text: str, **extra):
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You write image prompts."},
            {"role": "user", "content": text},
        ],
        **extra,
    }


def schema_body(text: str, schema: dict, **extra):
    return body(
        text,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "prompts", "strict": True, "schema": schema},
        },
        **extra,
    )


async def test_chat_completion_is_shaped_like_openai_and_deterministic(sandbox):
    first = await sandbox.chat(body("Give me 3 ideas for a cozy autumn cafe"))
    assert first.status_code == 200, first.text
    data = first.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-4o-mini"
    [choice] = data["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["refusal"] is None
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    lines = choice["message"]["content"].splitlines()
    assert len(lines) == 3
    assert [line.split(".")[0] for line in lines] == ["1", "2", "3"]
    assert all("cozy autumn cafe" in line.lower() for line in lines)
    assert len(set(lines)) == 3

    second = (await sandbox.chat(body("Give me 3 ideas for a cozy autumn cafe"))).json()
    assert second["choices"] == data["choices"]
    assert second["usage"] == data["usage"]
    assert second["id"] == data["id"]
    other = (await sandbox.chat(body("Give me 3 ideas for a rainy harbor"))).json()
    assert other["choices"][0]["message"]["content"] != choice["message"]["content"]


async def test_json_schema_answers_validate(sandbox):
    response = await sandbox.chat(schema_body("misty harbor with fishing boats", PROMPTS_SCHEMA))
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    instance = json.loads(content)
    jsonschema.validate(instance, PROMPTS_SCHEMA)
    assert len(instance["prompts"]) == 4
    assert all("misty harbor" in p["prompt"].lower() for p in instance["prompts"])
    again = await sandbox.chat(schema_body("misty harbor with fishing boats", PROMPTS_SCHEMA))
    assert again.json()["choices"][0]["message"]["content"] == content


async def test_json_object_and_n_choices(sandbox):
    response = await sandbox.chat(
        body("five desert scenes", response_format={"type": "json_object"}, n=2)
    )
    choices = response.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert len(json.loads(choices[0]["message"]["content"])["subjects"]) == 5


async def test_chat_auth(sandbox, start_sandbox):
    no_key = await sandbox.http.post(f"{sandbox.base_url}/v1/chat/completions", json=body("x"))
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "invalid_request_error"
    assert (await sandbox.chat(body("x"), key="anything")).status_code == 200
    strict = await start_sandbox(openai_api_key="sk-right")
    wrong = await strict.chat(body("x"), key="sk-wrong")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert (await strict.chat(body("x"), key="sk-right")).status_code == 200


async def test_models_and_bad_requests(sandbox):
    models = await sandbox.http.get(
        f"{sandbox.base_url}/v1/models", headers={"authorization": "Bearer k"}
    )
    assert models.json()["object"] == "list"
    assert {m["id"] for m in models.json()["data"]} >= {"gpt-4o-mini"}
    for bad in ({"model": "gpt-4o-mini"}, {"model": "gpt-4o-mini", "messages": []}):
        response = await sandbox.chat(bad)
        assert response.status_code == 400
        assert response.json()["error"]["message"]
    broken_ref = schema_body("x", {"type": "object", "properties": {"a": {"$ref": "#/$defs/no"}}})
    assert (await sandbox.chat(broken_ref)).status_code == 400
    assert (await sandbox.chat(body("x", stream=True))).status_code == 400


async def test_token_limit_cuts_the_answer(sandbox):
    response = await sandbox.chat(body("ten ideas for city parks", max_tokens=5))
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"]) <= 20


@pytest.mark.parametrize("how", ["global", "prompt"])
async def test_malformed_json_fault(sandbox, how):
    text = "a glacier at noon"
    if how == "global":
        await sandbox.set_faults(chat_malformed_json=True)
    else:
        text += " --sandbox-chat-malformed"
    response = await sandbox.chat(schema_body(text, PROMPTS_SCHEMA))
    assert response.status_code == 200
    content = response.json()["choices"][0]["message"]["content"]
    assert content.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


async def test_refusal_fault(sandbox):
    response = await sandbox.chat(schema_body("a meadow --sandbox-chat-refusal", PROMPTS_SCHEMA))
    message = response.json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["refusal"]


async def test_rate_limit_fault_with_retry_after_then_success(sandbox):
    await sandbox.set_faults(chat_rate_limit=True, chat_retry_after_s=7, chat_fault_attempts=1)
    first = await sandbox.chat(body("a lantern festival"))
    assert first.status_code == 429
    assert first.headers["retry-after"] == "7"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    retry = await sandbox.chat(body("a lantern festival"))
    assert retry.status_code == 200


async def test_server_error_fault(sandbox):
    for _ in range(2):
        response = await sandbox.chat(body("a volcano --sandbox-chat-500"))
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "server_error"


async def test_delay_fault(sandbox):
    started = time.monotonic()
    response = await sandbox.chat(body("a sundial --sandbox-chat-delay=300"))
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert "--sandbox" not in response.json()["choices"][0]["message"]["content"]


async def test_task_tokens_pass_through_into_generated_prompts(sandbox):
    response = await sandbox.chat(body("two ideas for a bridge --sandbox-fail"))
    content = response.json()["choices"][0]["message"]["content"]
    assert all(line.endswith("--sandbox-fail") for line in content.splitlines())
