"""Deterministic chat completions: same request, same answer; plus the chat faults."""

from __future__ import annotations

import asyncio
import json
import math
import time

from imagetron_sandbox.chat.errors import OpenAIError
from imagetron_sandbox.chat.models import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ModelCard,
    ModelList,
    Usage,
)
from imagetron_sandbox.chat.schema_instance import InstanceGenerator, SchemaError
from imagetron_sandbox.chat.subjects import Topic, numbered_list, requested_count
from imagetron_sandbox.determinism import Dice, stable_digest
from imagetron_sandbox.faults.knobs import FaultKnobs
from imagetron_sandbox.faults.store import FaultStore, within_attempts
from imagetron_sandbox.faults.tokens import FaultTokenError, ParsedPrompt, parse_prompt
from imagetron_sandbox.settings import SandboxSettings

REFUSAL = "I'm sorry, but I can't help with that request."
MODELS_CREATED = 1_700_000_000


class ChatService:
    def __init__(self, settings: SandboxSettings, faults: FaultStore) -> None:
        self._settings = settings
        self._faults = faults

    def models(self) -> ModelList:
        return ModelList(
            data=[ModelCard(id=name, created=MODELS_CREATED) for name in self._settings.chat_models]
        )

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        if request.stream:
            raise OpenAIError(400, "imagetron-sandbox does not support stream=true", param="stream")
        try:
            prompt = parse_prompt(request.last_user_text)
        except FaultTokenError as exc:
            raise OpenAIError(400, str(exc), param="messages") from exc
        fingerprint = stable_digest(request.model_dump(mode="json")).hex()
        knobs = self._active_faults(prompt, fingerprint)
        if knobs.chat_delay_ms:
            await asyncio.sleep(knobs.chat_delay_ms / 1000)
        if knobs.chat_rate_limit:
            raise OpenAIError(
                429,
                "Rate limit reached for requests (imagetron-sandbox). Please try again later.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(knobs.chat_retry_after_s)},
            )
        if knobs.chat_server_error:
            raise OpenAIError(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type="server_error",
            )
        choices = [
            self._choice(request, prompt, Dice("chat", fingerprint, index), index, knobs)
            for index in range(request.n)
        ]
        completion_tokens = sum(_tokens(c.message.content or c.message.refusal) for c in choices)
        prompt_tokens = sum(_tokens(m.text) + 4 for m in request.messages) + 3
        return ChatCompletion(
            id=f"chatcmpl-{fingerprint[:29]}",
            created=int(time.time()),
            model=request.model,
            choices=choices,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    def _active_faults(self, prompt: ParsedPrompt, fingerprint: str) -> FaultKnobs:
        """The chat faults that apply to this attempt (none once its attempts are used up)."""
        knobs = self._faults.knobs.overridden(prompt.overrides(chat=True))
        if not knobs.chat_faulty:
            return knobs
        attempt = self._faults.chats.hit(fingerprint)
        if within_attempts(knobs.chat_fault_attempts, attempt):
            return knobs
        return FaultKnobs()

    def _choice(
        self,
        request: ChatCompletionRequest,
        prompt: ParsedPrompt,
        dice: Dice,
        index: int,
        knobs: FaultKnobs,
    ) -> Choice:
        if knobs.chat_refusal:
            return Choice(index=index, message=AssistantMessage(content=None, refusal=REFUSAL))
        content = _answer(request, prompt, dice)
        if knobs.chat_malformed_json:
            content = _malformed(content)
        limit = request.token_limit
        if limit is not None and _tokens(content) > limit:
            return Choice(
                index=index,
                message=AssistantMessage(content=content[: limit * 4]),
                finish_reason="length",
            )
        return Choice(index=index, message=AssistantMessage(content=content))


def _answer(request: ChatCompletionRequest, prompt: ParsedPrompt, dice: Dice) -> str:
    suffix = " ".join(prompt.passthrough())
    response_format = request.response_format
    if response_format is not None and response_format.type == "json_schema":
        if response_format.json_schema is None:
            raise OpenAIError(
                400, "Missing required parameter: 'response_format.json_schema'.",
                param="response_format.json_schema",
            )  # fmt: skip
        generator = InstanceGenerator(
            response_format.json_schema.json_schema, Topic.of(prompt.text), dice, suffix
        )
        try:
            return json.dumps(generator.generate(), ensure_ascii=False)
        except SchemaError as exc:
            raise OpenAIError(
                400, f"Invalid schema for response_format: {exc}", param="response_format"
            ) from exc
    if response_format is not None and response_format.type == "json_object":
        return json.dumps({"subjects": _subjects(prompt, dice, suffix)}, ensure_ascii=False)
    return numbered_list(prompt.text, dice, suffix)


def _subjects(prompt: ParsedPrompt, dice: Dice, suffix: str) -> list[str]:
    topic = Topic.of(prompt.text)
    tail = f" {suffix}" if suffix else ""
    return [topic.subject(i, dice) + tail for i in range(requested_count(prompt.text))]


def _malformed(content: str) -> str:
    """Broken JSON that still looks like JSON: an object cut off mid-way."""
    try:
        json.loads(content)
        as_json = content
    except ValueError:
        as_json = json.dumps({"subjects": content.splitlines()})
    return as_json[: max(1, len(as_json) * 3 // 5)]


def _tokens(text: str | None) -> int:
    return math.ceil(len(text) / 4) if text else 0
