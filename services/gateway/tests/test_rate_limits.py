"""The request rate limits (`limits` in this process): a burst past the limit is refused
with when to come back, callers do not share a budget, and keeping a thousand callers'
counters costs no thread hop per caller, nor a walk over all of them per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from imagetron_gateway.adapters.rate_limits import CountersStorage, RequestRateLimits


def _limits(per_key: int = 3) -> RequestRateLimits:
    return RequestRateLimits(
        per_key=per_key, per_address=per_key, window_seconds=60, pictures_per_key=per_key
    )


async def test_a_burst_past_the_limit_is_refused_with_when_to_come_back():
    limits = _limits(per_key=3)
    decisions = [await limits.hit("per-key", "key-a") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    refused = decisions[3].headers()
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit-Policy"] == '"per-key";q=3;w=60'
    # Another caller, and another policy of the same caller, have budgets of their own.
    assert (await limits.hit("per-key", "key-b")).allowed
    assert (await limits.hit("per-key-pictures", "key-a")).allowed


async def test_a_thousand_callers_cost_no_thread_hop_each(monkeypatch: pytest.MonkeyPatch):
    """The moving window's memory storage expired its timestamps with a thread hop per
    caller, in a pass started again after any request: it never stopped under load."""
    hops = 0
    to_thread = asyncio.to_thread

    async def counted(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    limits = _limits(per_key=100)
    for n in range(1000):
        assert (await limits.hit("per-key", f"key-{n}")).allowed
    await asyncio.sleep(0.2)  # the storage's expiry pass, if any, runs meanwhile
    assert hops == 0


async def test_requests_do_not_each_walk_every_callers_counters(monkeypatch: pytest.MonkeyPatch):
    """The storage walked every counter after each request that found no walk under way:
    with requests arriving one by one that was one walk per request (1,000 walks over up to
    1,000 callers' counters here). Expired counters are still given back, once a second."""
    limits = _limits(per_key=100)
    storage = limits._storage
    assert isinstance(storage, CountersStorage)
    expire = storage._MemoryStorage__expire_events  # type: ignore[attr-defined]
    walks = 0

    async def counted() -> None:
        nonlocal walks
        walks += 1
        await expire()

    monkeypatch.setattr(storage, "_MemoryStorage__expire_events", counted)
    for n in range(1000):
        assert (await limits.hit("per-key", f"key-{n}")).allowed
        await asyncio.sleep(0)  # requests arrive one by one: the loop runs between them
    assert walks == 1
    # A second later, expired counters are dropped by the next walk.
    for key in storage.expirations:
        storage.expirations[key] = 0
    monkeypatch.setattr(storage, "_next_pass", 0.0)
    assert (await limits.hit("per-key", "key-late")).allowed
    await asyncio.sleep(0.05)
    assert walks == 2
    assert [key for key in storage.storage if "key-late" not in key] == []
