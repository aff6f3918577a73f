"""Daily budgets for what costs money: language-model calls and generations, per user and
UTC day, counted in PostgreSQL so every gateway replica shares them exactly.

A call is counted before it is made (so concurrent calls cannot overshoot) and given back
when the service refused it without spending anything (a 4xx: not found, conflict,
invalid); a 5xx keeps it, since the model or the provider may have been paid.

A request with an Idempotency-Key (its `RequestId`) is charged once: its retry after a 5xx
is the same work, which the service does not do twice, so it is neither counted again nor
refused for a budget spent meanwhile; a 4xx gives back exactly that request's charge. The
charges are remembered for the day they count on and the next (`remove_old_charges`): a
later retry is charged as a new request."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from uuid import UUID

from imagetron_gateway.app.ports import IdentityUnitOfWork
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import ProblemError, TooManyRequests

#: Old request charges deleted per statement when pruning.
PRUNE_BATCH = 1000


class Spend(StrEnum):
    llm_calls = "llm_calls"
    generations = "generations"


@dataclass(frozen=True)
class Allowance:
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


def _day_and_reset(now: datetime) -> tuple[date, datetime]:
    day = now.date()
    return day, datetime.combine(day + timedelta(days=1), time(), tzinfo=now.tzinfo)


class DailyBudgets:
    def __init__(
        self, uow_factory: Callable[[], IdentityUnitOfWork], limits: Mapping[Spend, int]
    ) -> None:
        self._uow_factory = uow_factory
        self._limits = dict(limits)

    async def today(self, user_id: UUID) -> tuple[date, datetime, dict[Spend, Allowance]]:
        day, resets_at = _day_and_reset(utcnow())
        async with self._uow_factory() as uow:
            used = await uow.usage.of_day(user_id, day)
        return (
            day,
            resets_at,
            {kind: Allowance(limit, used.get(kind, 0)) for kind, limit in self._limits.items()},
        )

    @contextlib.asynccontextmanager
    async def spending(
        self, user_id: UUID, kind: Spend, request_id: str | None = None
    ) -> AsyncIterator[None]:
        now = utcnow()
        day, resets_at = _day_and_reset(now)
        limit = self._limits[kind]
        async with self._uow_factory() as uow:
            counted = await uow.usage.spend(user_id, day, kind, limit, request_id)
            await uow.commit()
        if not counted:
            retry = max(1, math.ceil((resets_at - now).total_seconds()))
            raise TooManyRequests(
                f"Today's budget of {limit} {kind.replace('_', ' ')} is spent; it renews at "
                f"{resets_at.isoformat()} (GET /api/v1/me/usage shows what is left).",
                headers={"Retry-After": str(retry)},
            )
        try:
            yield
        except ProblemError as exc:
            if exc.status < 500:
                async with self._uow_factory() as uow:
                    await uow.usage.give_back(user_id, day, kind, request_id)
                    await uow.commit()
            raise

    async def remove_old_charges(self) -> int:
        """Forget the charges of requests counted before yesterday (UTC), a batch per
        transaction; how many."""
        day, _ = _day_and_reset(utcnow())
        removed = batch = PRUNE_BATCH
        total = 0
        while removed == batch:
            async with self._uow_factory() as uow:
                removed = await uow.usage.remove_charges_before(day - timedelta(days=1), batch)
                await uow.commit()
            total += removed
        return total
