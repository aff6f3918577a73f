"""The language model, built (the `openai` SDK imported) when it is first asked something.

Most starts of the prompts service never talk to the model before they are ready, many never
at all, and the SDK's import is 0.6-0.7 s of CPU: the fork server imports every service's
code before any can start, so it was on the path of every `imagetron up`. The first answer
asked of a process pays it instead, in a worker thread (`imagetron_platform.first_use`),
well within the gateway's margin over `llm_deadline_seconds` (30 s by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from imagetron_platform.first_use import OnFirstUse
from imagetron_prompts.app.ports import AnswerT, LlmAnswer, LlmMessage

if TYPE_CHECKING:
    from imagetron_prompts.adapters.llm import OpenAiLlm


class LlmOnFirstUse:
    """`LlmPort` over the `OpenAiLlm` that `build` makes, once, at the first answer."""

    def __init__(self, model: str, build: Callable[[], OpenAiLlm]) -> None:
        self._model = model
        self._llm = OnFirstUse(build)

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
        llm = await self._llm.get()
        return await llm.answer(messages, answer_type, check=check)

    async def close(self) -> None:
        """Close the SDK's client, if it was ever built."""
        llm = self._llm.built
        if llm is not None:
            await llm.close()
