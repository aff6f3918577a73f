"""Request rate limits with the `limits` library: a sliding window per API key, and per
client address for requests without one.

The sliding window counter (`limits`' `SlidingWindowCounterRateLimiter`) keeps two counters
per caller and weighs the previous window's by how much of it is still inside the window:
a burst is refused past the limit as with an exact moving window, which would keep one
timestamp per request. The moving window was measured out: its memory storage expires the
timestamps in a pass over every caller with a thread hop for each (`asyncio.to_thread`),
started again after any request, so with a thousand callers it never stopped and the
interpreter's lock went back and forth between the event loop and the thread (the gateway's
CPU to open an event stream, 2,000 opened at 150/s by 200 keys: 6.3-6.5 ms with it,
4.6 ms without). The counters' storage had the same pass without the thread hops: see
`CountersStorage`.

The counters live in this process (`limits`' memory storage): with N gateway replicas
behind a load balancer a client gets at most N times its limit, evenly spread in practice.
What costs money (language-model calls, generations) is bounded exactly by the daily
budgets, which are counted in PostgreSQL (`adapters/identity.py`), not here."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter


class CountersStorage(MemoryStorage):
    """`limits`' async memory storage, its pass over every counter run at most once every
    `EXPIRY_PASS_SECONDS`.

    The storage starts that pass (dropping expired counters) after any increment unless one
    is under way, so each request paid a walk over every caller's counters: the gateway
    opening 2,000 event streams for 200 keys spent 17 % of its CPU there (py-spy). A counter
    is read through `get`, which drops it itself once expired, so the pass only gives memory
    back, and doing it once a second is enough for that."""

    EXPIRY_PASS_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._next_pass = 0.0

    # The storage's own scheduler (name-mangled: `__schedule_expiry` in its methods).
    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_pass:
            return
        self._next_pass = now + self.EXPIRY_PASS_SECONDS
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    policy: str
    limit: int
    remaining: int
    window_seconds: int
    #: Seconds until the window has room again (0 while it has).
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers), and
        `Retry-After` when refused."""
        headers = {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window_seconds}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={self.reset_seconds}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_seconds, 1))
        return headers


class RequestRateLimits:
    """Three policies: `per-key` (`per_key` requests per window for each API key),
    `per-address` (`per_address` for each client address without a key) and
    `per-key-pictures` (`pictures_per_key` thumbnails and previews per window for each key:
    a gallery shows hundreds at a time, each fetched once and then cached)."""

    def __init__(
        self, *, per_key: int, per_address: int, window_seconds: int, pictures_per_key: int
    ) -> None:
        self._storage = CountersStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._window = window_seconds
        self._items = {
            "per-key": RateLimitItemPerSecond(per_key, window_seconds),
            "per-address": RateLimitItemPerSecond(per_address, window_seconds),
            "per-key-pictures": RateLimitItemPerSecond(pictures_per_key, window_seconds),
        }

    async def hit(self, policy: str, who: str) -> RateDecision:
        item = self._items[policy]
        # The policy is part of the counter's key: `limits` keys a counter by the item's
        # numbers and the identifiers, so two policies with the same numbers would share it.
        allowed = await self._limiter.hit(item, policy, who)
        stats = await self._limiter.get_window_stats(item, policy, who)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return RateDecision(
            allowed=allowed,
            policy=policy,
            limit=item.amount,
            remaining=stats.remaining,
            window_seconds=self._window,
            reset_seconds=reset,
        )
