"""The language model through the `openai` SDK: OpenAI or any compatible server.

Three layers of protection, from the wire up:

1. The SDK client (built in `bootstrap`) bounds each HTTP request by `llm_timeout_seconds`
   and retries 408/409/429/5xx, connection errors and timeouts `llm_max_retries` times
   with exponential backoff (0.5 s doubling to 8 s, with jitter), honouring `Retry-After`
   up to two minutes. What still fails becomes an `LlmError` naming the cause.
2. Each answer is a structured output through the SDK's
   `chat.completions.parse(response_format=<the pydantic answer model>)`: the SDK sends the
   model's strict JSON schema, raises on an answer cut off at the token limit or stopped by
   the content filter, hands over a refusal as `message.refusal`, and parses the content
   with the model. Here the use case's `check` judges the parsed answer, and an unusable
   answer (refused, filtered, truncated, malformed or breaking a rule) is asked for again,
   `llm_answer_attempts` times in all; then `LlmError`.
3. The whole call (every attempt and retry) must finish within `llm_deadline_seconds`,
   else `LlmError(timeout)`; the gateway waits a little longer than that.

Usage is summed over every completion received, useful or not.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import openai
from openai import AsyncOpenAI
from openai._legacy_response import LegacyAPIResponse
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
    ParsedChatCompletion,
)
from prometheus_client import Counter
from pydantic import ValidationError

from imagetron_platform.metrics import REGISTRY
from imagetron_prompts.app.ports import AnswerT, LlmAnswer, LlmError, LlmMessage, LlmOutcome
from imagetron_prompts.domain.usage import TokenUsage

log = logging.getLogger(__name__)

LLM_CALLS = Counter(
    "imagetron_llm_calls_total",
    "Calls to the language model by outcome (one call may take several attempts).",
    ["outcome"],
    registry=REGISTRY,
)
LLM_ATTEMPTS = Counter(
    "imagetron_llm_attempts_total",
    "Completions received from the language model, by verdict.",
    ["verdict"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "imagetron_llm_tokens_total",
    "Tokens consumed, by kind (prompt, completion).",
    ["kind"],
    registry=REGISTRY,
)

#: Keywords strict structured outputs reject (OpenAI answers 400 "... is not permitted");
#: the pydantic model still enforces them on the answer.
_UNSUPPORTED_KEYWORDS = frozenset(
    {"title", "default", "minLength", "maxLength", "uniqueItems", "examples"}
)
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def _without_unsupported_keywords(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_unsupported_keywords(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: _without_unsupported_keywords(sub) for name, sub in value.items()}
        elif key not in _UNSUPPORTED_KEYWORDS:
            out[key] = _without_unsupported_keywords(value)
    return out


@functools.cache
def wire_model(answer_type: type[AnswerT]) -> type[AnswerT]:
    """`answer_type` as the SDK sends it: the same fields and validation (its answers are
    instances of `answer_type`), a schema without the keywords strict mode refuses, and a
    name the API accepts. The SDK makes the schema strict (closed objects, every property
    required)."""

    class Wire(answer_type):  # type: ignore[valid-type,misc]
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            schema: dict[str, Any] = _without_unsupported_keywords(
                super().model_json_schema(*args, **kwargs)
            )
            return schema

    Wire.__name__ = Wire.__qualname__ = _NAME.sub("_", answer_type.__name__)[:64]
    return cast(type[AnswerT], Wire)


def _wire(message: LlmMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return ChatCompletionSystemMessageParam(role="system", content=message.content)
    if message.role == "assistant":
        return ChatCompletionAssistantMessageParam(role="assistant", content=message.content)
    return ChatCompletionUserMessageParam(role="user", content=message.content)


@dataclass
class _Spent:
    usage: TokenUsage


class OpenAiLlm:
    """`LlmPort` over an `AsyncOpenAI` client (which owns timeouts and transport retries)."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str,
        answer_attempts: int,
        deadline_seconds: float,
    ) -> None:
        if answer_attempts < 1:
            raise ValueError("answer_attempts must be at least 1")
        self._client = client
        self._model = model
        self._answer_attempts = answer_attempts
        self._deadline = deadline_seconds

    @property
    def model(self) -> str:
        return self._model

    async def close(self) -> None:
        """Close the SDK's client (its connections)."""
        await self._client.close()

    async def answer(
        self,
        messages: Sequence[LlmMessage],
        answer_type: type[AnswerT],
        *,
        check: Callable[[AnswerT], None] | None = None,
    ) -> LlmAnswer[AnswerT]:
        spent = _Spent(TokenUsage(model=self._model))
        try:
            async with asyncio.timeout(self._deadline):
                answer = await self._attempts(messages, answer_type, check, spent)
        except TimeoutError as exc:
            LLM_CALLS.labels(LlmOutcome.TIMEOUT.value).inc()
            raise LlmError(
                LlmOutcome.TIMEOUT,
                f"no usable answer within the {self._deadline:g} s deadline "
                f"({spent.usage.attempts} answers received)",
                spent.usage,
            ) from exc
        except LlmError as exc:
            LLM_CALLS.labels(exc.outcome.value).inc()
            raise
        LLM_CALLS.labels(LlmOutcome.OK.value).inc()
        return answer

    async def _attempts(
        self,
        messages: Sequence[LlmMessage],
        answer_type: type[AnswerT],
        check: Callable[[AnswerT], None] | None,
        spent: _Spent,
    ) -> LlmAnswer[AnswerT]:
        wire = [_wire(m) for m in messages]
        failures: list[tuple[LlmOutcome, str]] = []
        for attempt in range(1, self._answer_attempts + 1):
            response = await self._complete(wire, wire_model(answer_type), spent)
            verdict, usage = evaluate(response, check)
            prompt_tokens = usage.prompt_tokens if usage is not None else 0
            completion_tokens = usage.completion_tokens if usage is not None else 0
            spent.usage = spent.usage.plus_attempt(prompt_tokens, completion_tokens)
            LLM_TOKENS.labels("prompt").inc(prompt_tokens)
            LLM_TOKENS.labels("completion").inc(completion_tokens)
            if not isinstance(verdict, tuple):
                LLM_ATTEMPTS.labels("accepted").inc()
                log.info(
                    "language model answered",
                    extra={
                        "model": self._model,
                        "attempts": attempt,
                        "prompt_tokens": spent.usage.prompt_tokens,
                        "completion_tokens": spent.usage.completion_tokens,
                    },
                )
                return LlmAnswer(value=verdict, usage=spent.usage)
            outcome, reason = verdict
            LLM_ATTEMPTS.labels(outcome.value).inc()
            failures.append(verdict)
            log.warning(
                "unusable language model answer (attempt %d of %d): %s: %s",
                attempt,
                self._answer_attempts,
                outcome.value,
                reason,
            )
        outcome, reason = failures[-1]
        summary = ", ".join(f"{o.value}" for o, _ in failures)
        raise LlmError(
            outcome,
            f"{len(failures)} answers in a row were unusable ({summary}); the last: {reason}",
            spent.usage,
        )

    async def _complete(
        self,
        messages: list[ChatCompletionMessageParam],
        answer_type: type[AnswerT],
        spent: _Spent,
    ) -> LegacyAPIResponse[ParsedChatCompletion[AnswerT]]:
        """One completion, after the SDK's own retries, not parsed yet (a completion that
        does not parse still cost tokens); transport failures → LlmError."""
        retries = self._client.max_retries
        try:
            return await self._client.chat.completions.with_raw_response.parse(
                model=self._model,
                messages=messages,
                response_format=answer_type,
            )
        except openai.APITimeoutError as exc:
            outcome, reason = (
                LlmOutcome.TIMEOUT,
                f"no response within {self._client.timeout} s per request, "
                f"{retries} retries included",
            )
            cause: Exception = exc
        except openai.RateLimitError as exc:
            outcome, reason = (
                LlmOutcome.RATE_LIMITED,
                f"HTTP 429 after {retries} retries: {exc.message}",
            )
            cause = exc
        except openai.APIConnectionError as exc:
            outcome, reason = LlmOutcome.UNREACHABLE, f"{exc.message} ({self._client.base_url})"
            cause = exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                outcome = LlmOutcome.UPSTREAM_ERROR
                reason = f"HTTP {exc.status_code} after {retries} retries: {exc.message}"
            else:
                outcome = LlmOutcome.REJECTED
                reason = f"HTTP {exc.status_code}: {exc.message}"
            cause = exc
        raise LlmError(outcome, reason, spent.usage) from cause


def evaluate(
    response: LegacyAPIResponse[ParsedChatCompletion[AnswerT]],
    check: Callable[[AnswerT], None] | None,
) -> tuple[AnswerT | tuple[LlmOutcome, str], CompletionUsage | None]:
    """The answer the SDK parsed and `check` accepted, or why this completion is unusable;
    and what it cost."""
    try:
        completion = response.parse()
    except openai.LengthFinishReasonError as exc:
        return (LlmOutcome.TRUNCATED, "the answer reached the token limit"), exc.completion.usage
    except openai.ContentFilterFinishReasonError as exc:
        usage = exc.completion.usage if exc.completion is not None else None
        return (LlmOutcome.REFUSED, "stopped by the content filter"), usage
    except ValidationError as exc:
        return (LlmOutcome.MALFORMED, _validation_reason(exc)), _usage_of(response)
    if not completion.choices:
        return (LlmOutcome.MALFORMED, "the completion has no choices"), completion.usage
    message = completion.choices[0].message
    if message.refusal:
        return (LlmOutcome.REFUSED, f"refusal: {message.refusal!r}"), completion.usage
    if message.parsed is None:
        return (LlmOutcome.MALFORMED, "the answer is empty"), completion.usage
    if check is not None:
        try:
            check(message.parsed)
        except ValueError as exc:
            return (LlmOutcome.MALFORMED, f"the answer breaks a rule: {exc}"), completion.usage
    return message.parsed, completion.usage


def _usage_of(response: LegacyAPIResponse[Any]) -> CompletionUsage | None:
    """The usage of a completion whose content did not parse."""
    try:
        return CompletionUsage.model_validate(json.loads(response.content).get("usage"))
    except (ValueError, AttributeError):
        return None


def _validation_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"not valid JSON ({first['msg']})"
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    count = error.error_count()
    more = f" and {count - 1} more" if count > 1 else ""
    return f"does not match the schema: {where}: {first['msg']}{more}"
