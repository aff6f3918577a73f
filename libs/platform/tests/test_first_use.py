"""`OnFirstUse`: an adapter built once, at its first use, off the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from imagetron_platform.first_use import OnFirstUse


async def test_it_is_built_once_in_a_worker_thread_when_first_asked_for() -> None:
    builds: list[str] = []

    def build() -> str:
        builds.append(threading.current_thread().name)
        return "client"

    client = OnFirstUse(build)
    assert client.built is None
    assert builds == []
    assert await asyncio.gather(*(client.get() for _ in range(5))) == ["client"] * 5
    assert len(builds) == 1
    assert builds[0] != threading.current_thread().name  # the loop kept serving meanwhile
    assert client.built == "client"
    assert await client.get() == "client"
    assert len(builds) == 1


async def test_a_build_that_fails_is_tried_again_by_the_next_use() -> None:
    attempts: list[int] = []

    def build() -> int:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise RuntimeError("not yet")
        return 42

    value = OnFirstUse(build)
    with pytest.raises(RuntimeError, match="not yet"):
        await value.get()
    assert value.built is None
    assert await value.get() == 42
    assert attempts == [0, 1]
