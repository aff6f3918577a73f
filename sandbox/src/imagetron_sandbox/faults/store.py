"""Holds the global fault knobs and counts attempts for the 'first N attempts' knobs."""

from __future__ import annotations

from collections import OrderedDict

from imagetron_sandbox.faults.knobs import FaultKnobs

_MAX_TRACKED_KEYS = 10_000


class AttemptCounter:
    """Counts how often each key (an image name, a request fingerprint) was attempted."""

    def __init__(self, capacity: int = _MAX_TRACKED_KEYS) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def hit(self, key: str) -> int:
        """Record one attempt and return its 1-based number."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)
        return count

    def clear(self) -> None:
        self._counts.clear()


class FaultStore:
    """The global knobs (``/sandbox/faults``) and the attempt counters they drive."""

    def __init__(self) -> None:
        self._knobs = FaultKnobs()
        self.downloads = AttemptCounter()
        self.chats = AttemptCounter()
        self.uploads = AttemptCounter()

    @property
    def knobs(self) -> FaultKnobs:
        return self._knobs

    def replace(self, knobs: FaultKnobs) -> FaultKnobs:
        """Install new global knobs; attempt counting starts afresh."""
        self._knobs = knobs
        self.downloads.clear()
        self.chats.clear()
        self.uploads.clear()
        return knobs

    def reset(self) -> FaultKnobs:
        return self.replace(FaultKnobs())


def within_attempts(limit: int, attempt: int) -> bool:
    """Whether attempt number ``attempt`` is still faulty under an attempts ``limit`` (0 = all)."""
    return limit == 0 or attempt <= limit
