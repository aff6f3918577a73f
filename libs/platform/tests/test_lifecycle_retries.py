"""Lifecycle retries: periodic rounds that fail, dependencies not answering at start-up."""

from __future__ import annotations

import pytest

from imagetron_platform import lifecycle


class _Stop(Exception):
    pass


async def test_a_failing_round_is_retried_with_growing_delays_then_at_the_interval() -> None:
    outcomes = iter([False, False, False, True, True, False, True])
    delays: list[float] = []

    async def round_() -> None:
        if not next(outcomes):
            raise ConnectionError("the database is not yet accepting connections")

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 7:
            raise _Stop

    with pytest.raises(_Stop):
        await lifecycle.run_every("expired sessions", 3600, round_, sleep=sleep)
    assert delays == [1, 2, 4, 3600, 3600, 1, 3600]


async def test_start_up_waits_for_a_dependency_with_growing_delays_then_gives_its_error() -> None:
    delays: list[float] = []
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        clock[0] += seconds

    answers = iter([False, False, False, True])

    async def recovering() -> None:
        if not next(answers):
            raise ConnectionRefusedError("the database system is starting up")

    await lifecycle.wait_until_answers(
        "the database", recovering, 30, sleep=sleep, clock=lambda: clock[0]
    )
    assert delays == [0.25, 0.5, 1.0]

    delays.clear()

    async def down() -> None:
        raise ConnectionRefusedError("the database system is starting up")

    with pytest.raises(ConnectionRefusedError, match="starting up"):
        await lifecycle.wait_until_answers(
            "the database", down, 10, sleep=sleep, clock=lambda: clock[0]
        )
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0]  # the next 4 s would pass the 10 s
