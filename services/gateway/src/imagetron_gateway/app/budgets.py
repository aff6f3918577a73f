"""Daily budgets for what costs money: language-model calls and generations, per user and
UTC day, counted in PostgreSQL so every gateway replica shares them exactly.

A call is counted before it is made (so concurrent calls cannot overshoot) and given back
when the service refused it without spending anything (a 4xx: not found, conflict,
invalid); a 5xx keeps it, since the model or the provider may have been paid."""

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
    async def spending(self, user_id: UUID, kind: Spend) -> AsyncIterator[None]:
        now = utcnow()
        day, resets_at = _day_and_reset(now)
        limit = self._limits[kind]
        async with self._uow_factory() as uow:
            counted = await uow.usage.spend(user_id, day, kind, limit)
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
                    await uow.usage.give_back(user_id, day, kind)
                    await uow.commit()
            raise
