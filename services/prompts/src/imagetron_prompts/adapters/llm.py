"""The language model through the `openai` SDK: OpenAI or any compatible server.

Three layers of protection, from the wire up:

1. The SDK client (built in `bootstrap`) bounds each HTTP request by `llm_timeout_seconds`
   and retries 408/409/429/5xx, connection errors and timeouts `llm_max_retries` times
   with exponential backoff (0.5 s doubling to 8 s, with jitter), honouring `Retry-After`
   up to two minutes. What still fails becomes an `LlmError` naming the cause.
2. Here, each answer must be a structured output: `response_format` is a strict
   `json_schema` derived from the pydantic answer model, and the content is parsed and
   validated by that model and the use case's `check`. A refusal, a content-filter stop,
   an answer cut off at the token limit, or one that does not validate is asked for again,
   `llm_answer_attempts` times in all; then `LlmError`.
3. The whole call (every attempt and retry) must finish within `llm_deadline_seconds`,
   else `LlmError(timeout)`; the gateway waits a little longer than that.

Usage is summed over every completion received, useful or not.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONSchema
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

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


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the subset strict structured outputs accept: every object
    closed (`additionalProperties: false`) with every property required, and no keyword
    they refuse. `$defs`/`$ref`, `pattern`, `enum`, `minItems`/`maxItems` stay."""

    def strict(node: Any) -> Any:
        if isinstance(node, list):
            return [strict(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {
            key: (strict(value) if key not in ("properties", "$defs") else value)
            for key, value in node.items()
            if key not in _UNSUPPORTED_KEYWORDS
        }
        for container in ("properties", "$defs"):
            if isinstance(out.get(container), dict):
                out[container] = {name: strict(sub) for name, sub in out[container].items()}
        if out.get("type") == "object" or "properties" in out:
            out["additionalProperties"] = False
            out["required"] = list(out.get("properties", {}))
        return out

    result: dict[str, Any] = strict(copy.deepcopy(model.model_json_schema()))
    return result


def response_format(model: type[BaseModel]) -> ResponseFormatJSONSchema:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": _NAME.sub("_", model.__name__)[:64],
            "strict": True,
            "schema": strict_json_schema(model),
        },
    }


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
        format_ = response_format(answer_type)
        failures: list[tuple[LlmOutcome, str]] = []
        for attempt in range(1, self._answer_attempts + 1):
            completion = await self._complete(wire, format_, spent)
            usage = completion.usage
            prompt_tokens = usage.prompt_tokens if usage is not None else 0
            completion_tokens = usage.completion_tokens if usage is not None else 0
            spent.usage = spent.usage.plus_attempt(prompt_tokens, completion_tokens)
            LLM_TOKENS.labels("prompt").inc(prompt_tokens)
            LLM_TOKENS.labels("completion").inc(completion_tokens)
            verdict = _evaluate(completion, answer_type, check)
            if isinstance(verdict, BaseModel):
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
        format_: ResponseFormatJSONSchema,
        spent: _Spent,
    ) -> ChatCompletion:
        """One completion, after the SDK's own retries; transport failures → LlmError."""
        retries = self._client.max_retries
        try:
            return await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                response_format=format_,
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


def _evaluate(
    completion: ChatCompletion,
    answer_type: type[AnswerT],
    check: Callable[[AnswerT], None] | None,
) -> AnswerT | tuple[LlmOutcome, str]:
    """The validated answer, or why this completion is unusable."""
    if not completion.choices:
        return LlmOutcome.MALFORMED, "the completion has no choices"
    choice = completion.choices[0]
    message = choice.message
    if message.refusal:
        return LlmOutcome.REFUSED, f"refusal: {message.refusal!r}"
    if choice.finish_reason == "content_filter":
        return LlmOutcome.REFUSED, "stopped by the content filter"
    if choice.finish_reason == "length":
        return LlmOutcome.TRUNCATED, "the answer reached the token limit"
    if not message.content:
        return LlmOutcome.MALFORMED, "the answer is empty"
    try:
        value = answer_type.model_validate_json(message.content)
    except ValidationError as exc:
        return LlmOutcome.MALFORMED, _validation_reason(exc)
    if check is not None:
        try:
            check(value)
        except ValueError as exc:
            return LlmOutcome.MALFORMED, f"the answer breaks a rule: {exc}"
    return value


def _validation_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"not valid JSON ({first['msg']})"
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    count = error.error_count()
    more = f" and {count - 1} more" if count > 1 else ""
    return f"does not match the schema: {where}: {first['msg']}{more}"
