"""Daily budgets for what costs money: language-model calls and generations, per user and
UTC day, counted in PostgreSQL so every gateway replica shares them exactly.

A call is counted before it is made (so concurrent calls cannot overshoot) and given back
when the service refused it without spending anything (a 4xx: not found, conflict,
invalid); a 5xx keeps it, since the model or the provider may have been paid.

A request with an Idempotency-Key (its `RequestId`) is charged once: its retry after a 5xx
is the same work, which the service does not do twice, so it is neither counted again nor
refused for a budget spent meanwhile; a 4xx gives back exactly that request's charge. The
charges, and the days' counts, are kept for the day they count on and the next
(`remove_past_days`): a later retry is charged as a new request."""

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
from imagetron_platform.pruning import remove_in_batches


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

    async def remove_past_days(self) -> int:
        """Forget the charges and the counts of the days before yesterday (UTC), a batch per
        transaction, until none is left; how many rows. Yesterday's stay: a request charged
        then may still be given back (a 4xx answered after midnight) on the day it counted."""
        before = _day_and_reset(utcnow())[0] - timedelta(days=1)
        charges = await remove_in_batches(
            self._uow_factory, lambda uow, batch: uow.usage.remove_charges_before(before, batch)
        )
        counts = await remove_in_batches(
            self._uow_factory, lambda uow, batch: uow.usage.remove_counts_before(before, batch)
        )
        return charges + counts
