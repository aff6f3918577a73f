"""What a call to the language model cost."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens one language-model call consumed over all its attempts (an answer that had
    to be asked for again still cost its tokens)."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus_attempt(self, prompt_tokens: int, completion_tokens: int) -> TokenUsage:
        return replace(
            self,
            prompt_tokens=self.prompt_tokens + prompt_tokens,
            completion_tokens=self.completion_tokens + completion_tokens,
            attempts=self.attempts + 1,
        )
