"""`run_every`: a periodic job that fails is tried again soon, then at its interval."""

from __future__ import annotations

import pytest

from imagetron_platform import lifecycle


class _Stop(Exception):
    pass


async def test_a_failing_round_is_retried_with_growing_delays_then_at_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes = iter([False, False, False, True, True, False, True])
    delays: list[float] = []

    async def round_() -> None:
        if not next(outcomes):
            raise ConnectionError("the database is not yet accepting connections")

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 7:
            raise _Stop

    monkeypatch.setattr(lifecycle.asyncio, "sleep", sleep)
    with pytest.raises(_Stop):
        await lifecycle.run_every("expired sessions", 3600, round_)
    assert delays == [1, 2, 4, 3600, 3600, 1, 3600]
