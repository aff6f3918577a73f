"""The language model is built (the `openai` SDK imported) at its first answer, not at the
service's start (tests/test_startup_imports.py); its client is closed at shutdown only if it
was built."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from imagetron_prompts.adapters.llm_on_first_use import LlmOnFirstUse
from imagetron_prompts.app.ports import LlmAnswer, LlmMessage


class _Model:
    def __init__(self) -> None:
        self.asked: list[Sequence[LlmMessage]] = []
        self.closed = False

    async def answer(
        self, messages: Sequence[LlmMessage], answer_type: type[Any], *, check: Callable[..., None]
    ) -> LlmAnswer[Any]:
        self.asked.append(messages)
        return "answered"  # type: ignore[return-value]

    async def close(self) -> None:
        self.closed = True


async def test_the_model_is_built_at_the_first_answer_and_closed_only_then() -> None:
    built: list[_Model] = []

    def build() -> Any:
        built.append(_Model())
        return built[-1]

    unused = LlmOnFirstUse("gpt-test", build)
    assert unused.model == "gpt-test"
    assert built == []
    await unused.close()  # nothing to close
    assert built == []

    llm = LlmOnFirstUse("gpt-test", build)
    messages = [LlmMessage(role="user", content="hello")]
    assert await llm.answer(messages, dict) == "answered"
    assert await llm.answer(messages, dict) == "answered"
    assert len(built) == 1
    assert built[0].asked == [messages, messages]
    await llm.close()
    assert built[0].closed
