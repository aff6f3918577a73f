"""Reproducible pseudo-randomness derived from SHA-256, stable across processes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def stable_digest(*parts: object) -> bytes:
    """SHA-256 over a canonical JSON rendering of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).digest()


class Dice:
    """A deterministic stream of numbers: the same seed always yields the same sequence."""

    def __init__(self, *seed: object) -> None:
        self._seed = stable_digest(*seed)
        self._counter = 0

    def _next(self) -> int:
        self._counter += 1
        block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        return int.from_bytes(block[:8], "big")

    def unit(self) -> float:
        """A float in [0, 1)."""
        return self._next() / 2**64

    def between(self, low: int, high: int) -> int:
        """An integer in the closed range [low, high]."""
        if high <= low:
            return low
        return low + self._next() % (high - low + 1)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.unit()

    def pick(self, options: Sequence[T]) -> T:
        return options[self._next() % len(options)]

    def fork(self, *label: object) -> Dice:
        """An independent stream for a sub-part (so adding draws elsewhere changes nothing)."""
        return Dice(self._seed.hex(), *label)
