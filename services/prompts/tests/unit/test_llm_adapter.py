"""The pure parts of the OpenAI adapter: the strict schema it sends and how it judges one
completion. Its behaviour against a real server is in integration/test_llm_sandbox.py."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletion

from imagetron_prompts.adapters.llm import _evaluate, response_format, strict_json_schema
from imagetron_prompts.app.assistant import (
    STOCK_TITLE_PATTERN,
    TitleIdeas,
    prompt_drafts_for,
    subject_ideas_for,
)
from imagetron_prompts.app.ports import LlmOutcome


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


@pytest.mark.parametrize("model", [subject_ideas_for(None), prompt_drafts_for(3), TitleIdeas])
def test_the_schema_sent_is_strict(model):
    schema = strict_json_schema(model)
    objects = [n for n in walk(schema) if n.get("type") == "object"]
    assert objects
    for node in objects:
        assert node["additionalProperties"] is False
        assert set(node["required"]) == set(node["properties"])
    for node in walk(schema):
        assert not {"minLength", "maxLength", "title", "default"} & set(node), node


def test_counts_and_title_rules_survive_as_keywords_strict_mode_accepts():
    schema = strict_json_schema(prompt_drafts_for(3))
    assert (
        schema["properties"]["prompts"]["minItems"],
        schema["properties"]["prompts"]["maxItems"],
    ) == (3, 3)
    patterns = [n["pattern"] for n in walk(schema) if "pattern" in n]
    assert patterns == [STOCK_TITLE_PATTERN]


def test_response_format_names_the_answer():
    assert response_format(TitleIdeas)["json_schema"]["name"] == "TitleIdeas"
    assert response_format(TitleIdeas)["json_schema"]["strict"] is True


def completion(content=None, *, refusal=None, finish_reason="stop", choices=True):
    return ChatCompletion.model_validate(
        {
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
        }
    )


GOOD = '{"titles": ["Ripe pear on linen", "A single pear", "Pear still life"]}'


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
def test_unusable_completions_say_why(made, outcome, reason):
    verdict = _evaluate(made, TitleIdeas, None)
    assert isinstance(verdict, tuple)
    assert verdict[0] is outcome
    assert reason in verdict[1]


def test_a_valid_answer_is_parsed_then_checked():
    value = _evaluate(completion(GOOD), TitleIdeas, None)
    assert isinstance(value, TitleIdeas)

    def reject(answer):
        raise ValueError("not today")

    verdict = _evaluate(completion(GOOD), TitleIdeas, reject)
    assert verdict == (LlmOutcome.MALFORMED, "the answer breaks a rule: not today")
