"""What a job handler knows about the message it is handling."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """`message_id` keys the inbox; `attempt` counts deliveries of this message from 1."""

    message_id: str
    attempt: int = 1
    max_attempts: int = 1

    @property
    def is_last(self) -> bool:
        return self.attempt >= self.max_attempts


class RetryLater(Exception):
    """The job failed transiently and has deliveries left: redeliver it after a while."""
