"""Who persists an image next: slots shared fairly between owners and remote hosts.

A persist job holds a slot while it downloads, checks and stores its image. At most `total`
jobs hold one at once in this process, at most `per_owner` of one owner and `per_host` from
one remote host, so one user's slow or numerous images, or one slow server, cannot take
every slot. When a slot frees, it goes to the waiting job whose owner holds the fewest slots
(then the one that has waited longest) among those allowed to start: a second user's first
image goes before a first user's tenth. Waiting is bounded (`max_wait_seconds`): past it the
job gives up with a retryable failure instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field

from imagetron_images.app.ports import DownloadFailed


@dataclass(eq=False)
class _Waiter:
    owner: Hashable
    host: str | None
    order: int
    granted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class FairSlots:
    """The DownloadSlots port (see the module's docstring)."""

    def __init__(
        self, *, total: int, per_owner: int, per_host: int, max_wait_seconds: float = 300.0
    ) -> None:
        if min(total, per_owner, per_host) < 1:
            raise ValueError("every limit must allow at least one slot")
        self._total = total
        self._per_owner = per_owner
        self._per_host = per_host
        self._max_wait = max_wait_seconds
        self._by_owner: Counter[Hashable] = Counter()
        self._by_host: Counter[str] = Counter()
        self._waiting: list[_Waiter] = []
        self._arrivals = itertools.count()

    @property
    def held(self) -> int:
        return sum(self._by_owner.values())

    @contextlib.asynccontextmanager
    async def hold(self, owner: Hashable, host: str | None) -> AsyncIterator[None]:
        """Hold one slot for `owner`, downloading from `host` (None: not a remote host,
        e.g. our own staging bucket, which no host limit applies to)."""
        waiter = _Waiter(owner, host, next(self._arrivals))
        self._waiting.append(waiter)
        self._grant()
        if not waiter.granted.done():
            await self._wait(waiter)
        try:
            yield
        finally:
            self._by_owner[owner] -= 1
            if host is not None:
                self._by_host[host] -= 1
            self._grant()

    async def _wait(self, waiter: _Waiter) -> None:
        try:
            async with asyncio.timeout(self._max_wait):
                await asyncio.shield(waiter.granted)
        except BaseException as exc:
            if waiter.granted.done() and not waiter.granted.cancelled():
                # Granted as we gave up: hand the slot on.
                self._by_owner[waiter.owner] -= 1
                if waiter.host is not None:
                    self._by_host[waiter.host] -= 1
            else:
                waiter.granted.cancel()
                self._waiting.remove(waiter)
            self._grant()
            if isinstance(exc, TimeoutError):
                raise DownloadFailed(
                    f"No download slot came free within {self._max_wait:g} s "
                    f"({self.held} of {self._total} busy); try again later."
                ) from exc
            raise

    def _allowed(self, owner: Hashable, host: str | None) -> bool:
        return (
            self.held < self._total
            and self._by_owner[owner] < self._per_owner
            and (host is None or self._by_host[host] < self._per_host)
        )

    def _take(self, owner: Hashable, host: str | None) -> None:
        self._by_owner[owner] += 1
        if host is not None:
            self._by_host[host] += 1

    def _grant(self) -> None:
        while self._waiting and self.held < self._total:
            eligible = [w for w in self._waiting if self._allowed(w.owner, w.host)]
            if not eligible:
                return
            chosen = min(eligible, key=lambda w: (self._by_owner[w.owner], w.order))
            self._waiting.remove(chosen)
            self._take(chosen.owner, chosen.host)
            chosen.granted.set_result(None)
