"""Request rate limits with the `limits` library: a moving window per API key, and per
client address for requests without one.

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
from limits.aio.strategies import MovingWindowRateLimiter


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
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._window = window_seconds
        self._items = {
            "per-key": RateLimitItemPerSecond(per_key, window_seconds),
            "per-address": RateLimitItemPerSecond(per_address, window_seconds),
            "per-key-pictures": RateLimitItemPerSecond(pictures_per_key, window_seconds),
        }

    async def hit(self, policy: str, who: str) -> RateDecision:
        item = self._items[policy]
        allowed = await self._limiter.hit(item, who)
        stats = await self._limiter.get_window_stats(item, who)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return RateDecision(
            allowed=allowed,
            policy=policy,
            limit=item.amount,
            remaining=stats.remaining,
            window_seconds=self._window,
            reset_seconds=reset,
        )
