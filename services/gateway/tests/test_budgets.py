"""Daily budgets for what costs money: language-model calls and generations per user;
a request sent again with its Idempotency-Key (the same request id) is charged once. The
repository's rules run against the in-memory fake and the real identity schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from imagetron_contracts import streams
from imagetron_gateway.app.budgets import DailyBudgets, Spend
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import NotFound, ServiceTimeout
from imagetron_platform.pruning import PRUNE_BATCH

TODAY = date(2026, 12, 4)
GENERATIONS = Spend.generations.value


def _task(owner_id):
    now = datetime.now(UTC).isoformat()
    return {
        "id": str(uuid.uuid4()),
        "owner_id": str(owner_id),
        "prompt_id": str(uuid.uuid4()),
        "command": "reroll",
        "status": "pending",
        "progress": 0,
        "provider": "goapi",
        "provider_task_id": None,
        "prompt_text": "a pear",
        "aspect_ratio": "1:1",
        "process_mode": "fast",
        "created_at": now,
        "updated_at": now,
    }


async def _usage(gateway, who="ada"):
    response = await gateway.client.get("/api/v1/me/usage", headers=gateway.auth(who))
    assert response.status_code == 200
    return response.json()


async def test_generations_stop_at_the_daily_budget_with_retry_after(gateway):
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_IMAGES_TASKS_REROLL] = _task(ada.id)
    url = f"/api/v1/tasks/{uuid.uuid4()}/reroll"
    for _ in range(gateway.settings.generations_per_day):
        assert (await gateway.client.post(url, headers=gateway.auth("ada"))).status_code == 202
    refused = await gateway.client.post(url, headers=gateway.auth("ada"))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert "GET /api/v1/me/usage" in refused.json()["detail"]
    assert len(gateway.services.calls) == gateway.settings.generations_per_day  # not called
    usage = await _usage(gateway)
    assert usage["generations"] == {"limit": 2, "used": 2, "remaining": 0}
    assert usage["llm_calls"] == {"limit": 5, "used": 0, "remaining": 5}
    # Another user's budget is its own.
    other = await gateway.client.post(url, headers=gateway.auth("admin"))
    assert other.status_code == 202


async def test_a_refused_call_costs_nothing(gateway):
    gateway.services.answers[streams.RPC_PROMPTS_RETITLE] = NotFound("No such prompt.")
    for _ in range(5):
        response = await gateway.client.post(
            f"/api/v1/prompts/{uuid.uuid4()}/retitle", headers=gateway.auth("ada")
        )
        assert response.status_code == 404
    assert (await _usage(gateway))["llm_calls"]["used"] == 0


# --- the repository: the fake and PostgreSQL keep the same rules ----------------------


async def _spend(
    uow: Callable[[], Any], user: uuid.UUID, request_id: str | None, *, limit: int = 2,
    day: date = TODAY,
) -> bool:  # fmt: skip
    async with uow() as unit:
        counted = await unit.usage.spend(user, day, GENERATIONS, limit, request_id)
        await unit.commit()
    return bool(counted)


async def _give_back(
    uow: Callable[[], Any], user: uuid.UUID, request_id: str | None, day: date = TODAY
) -> None:
    async with uow() as unit:
        await unit.usage.give_back(user, day, GENERATIONS, request_id)
        await unit.commit()


async def _used(uow: Callable[[], Any], user: uuid.UUID, day: date = TODAY) -> int:
    async with uow() as unit:
        return int((await unit.usage.of_day(user, day)).get(GENERATIONS, 0))


def _request() -> str:
    return uuid.uuid4().hex * 2  # the gateway's request ids are SHA-256 hex digests


async def test_a_request_is_charged_once(identity_store) -> None:
    uow, user = identity_store
    first = _request()
    assert await _spend(uow, user, first)
    assert await _spend(uow, user, first)
    assert await _used(uow, user) == 1
    assert await _spend(uow, user, _request())  # another request is another charge
    assert await _used(uow, user) == 2


async def test_a_charged_request_is_not_refused_by_a_spent_budget(identity_store) -> None:
    uow, user = identity_store
    charged, refused = _request(), _request()
    assert await _spend(uow, user, charged, limit=1)
    assert not await _spend(uow, user, refused, limit=1)
    assert not await _spend(uow, user, None, limit=1)
    assert await _spend(uow, user, charged, limit=1)  # its retry
    assert await _used(uow, user) == 1
    # The refused request left no charge behind: with room again, it is counted.
    assert await _spend(uow, user, refused, limit=2)
    assert await _used(uow, user) == 2


async def test_a_give_back_removes_exactly_that_requests_charge_once(identity_store) -> None:
    uow, user = identity_store
    yesterday, today = _request(), _request()
    assert await _spend(uow, user, yesterday, day=TODAY - timedelta(days=1))
    assert await _spend(uow, user, today)
    assert await _spend(uow, user, None)
    # Given back today, the charge goes from the day it was counted on, and only once.
    for _ in range(2):
        await _give_back(uow, user, yesterday)
    await _give_back(uow, user, _request())  # never charged: nothing
    assert await _used(uow, user, TODAY - timedelta(days=1)) == 0
    assert await _used(uow, user) == 2
    await _give_back(uow, user, today)
    assert await _used(uow, user) == 1
    assert await _spend(uow, user, today)  # given back, then sent again: charged again
    assert await _used(uow, user) == 2


async def test_attempts_at_one_request_at_once_are_charged_once(identity_store) -> None:
    uow, user = identity_store
    request_id = _request()
    counted = await asyncio.gather(*(_spend(uow, user, request_id, limit=5) for _ in range(6)))
    assert all(counted)
    assert await _used(uow, user) == 1
    await asyncio.gather(*(_give_back(uow, user, request_id) for _ in range(6)))
    assert await _used(uow, user) == 0


async def test_old_charges_are_forgotten(identity_store) -> None:
    uow, user = identity_store
    old, recent = _request(), _request()
    assert await _spend(uow, user, old, day=TODAY - timedelta(days=2))
    assert await _spend(uow, user, recent, day=TODAY - timedelta(days=1))
    async with uow() as unit:
        assert await unit.usage.remove_charges_before(TODAY - timedelta(days=1), 1000) >= 1
        await unit.commit()
    assert await _spend(uow, user, old)  # forgotten: a new charge
    assert await _spend(uow, user, recent)  # remembered: not again
    assert await _used(uow, user) == 1


# --- the budgets: what a call with a request id costs ----------------------------------


async def test_a_timed_out_call_sent_again_costs_once(fake_identity_uow) -> None:
    budgets = DailyBudgets(fake_identity_uow, {Spend.generations: 1})
    user, request_id = uuid.uuid4(), _request()
    with pytest.raises(ServiceTimeout):
        async with budgets.spending(user, Spend.generations, request_id):
            raise ServiceTimeout("No answer within 10 s.")
    async with budgets.spending(user, Spend.generations, request_id):
        pass  # not refused, though the day's one generation is spent
    _, _, allowances = await budgets.today(user)
    assert allowances[Spend.generations].used == 1
    with pytest.raises(NotFound):
        async with budgets.spending(user, Spend.generations, request_id):
            raise NotFound("No such task.")
    _, _, allowances = await budgets.today(user)
    assert allowances[Spend.generations].used == 0


async def test_charges_before_yesterday_are_removed(fake_identity_uow) -> None:
    budgets = DailyBudgets(fake_identity_uow, {Spend.generations: 5})
    user, today = uuid.uuid4(), datetime.now(UTC).date()
    for days_ago in (0, 1, 2, 3):
        assert await _spend(
            fake_identity_uow, user, f"r{days_ago}", day=today - timedelta(days_ago)
        )
    assert await budgets.remove_past_days() == 4  # two charges, two days' counts
    assert await budgets.remove_past_days() == 0
    async with fake_identity_uow() as unit:
        assert sorted(unit.usage.charges) == ["r0", "r1"]
        assert sorted(day for _, day, _ in unit.usage.spent) == [today - timedelta(1), today]


async def test_one_round_removes_the_days_before_yesterday(identity_store) -> None:
    uow, user = identity_store
    today = utcnow().date()
    old = [today - timedelta(days=n) for n in range(2, PRUNE_BATCH + 3)]  # more than a batch
    recent = [today - timedelta(days=1), today]
    async with uow() as unit:
        for day in old + recent:
            assert await unit.usage.spend(user, day, GENERATIONS, 5, _request())
        await unit.commit()

    await DailyBudgets(uow, {Spend.generations: 5}).remove_past_days()

    async with uow() as unit:
        left = [day for day in old if await unit.usage.of_day(user, day)]
        kept = [day for day in recent if await unit.usage.of_day(user, day)]
    assert (len(left), kept) == (0, recent)


# --- over HTTP ---------------------------------------------------------------------------


async def test_a_generation_retried_after_a_504_is_counted_once(gateway) -> None:
    ada = gateway.people["ada"]
    url = f"/api/v1/tasks/{uuid.uuid4()}/reroll"
    retried = {**gateway.auth("ada"), "Idempotency-Key": f"key-{uuid.uuid4()}"}
    gateway.services.answers[streams.RPC_IMAGES_TASKS_REROLL] = ServiceTimeout("No answer.")
    assert (await gateway.client.post(url, headers=retried)).status_code == 504
    assert (await _usage(gateway))["generations"]["used"] == 1  # the provider may be paid
    gateway.services.answers[streams.RPC_IMAGES_TASKS_REROLL] = _task(ada.id)
    assert (await gateway.client.post(url, headers=gateway.auth("ada"))).status_code == 202
    # The day's two generations are spent; the retry is the first one's, not a third.
    again = await gateway.client.post(url, headers=retried)
    assert again.status_code == 202
    assert (await _usage(gateway))["generations"] == {"limit": 2, "used": 2, "remaining": 0}
    assert (await gateway.client.post(url, headers=gateway.auth("ada"))).status_code == 429


async def test_a_retry_refused_with_a_4xx_gives_back_the_first_attempts_charge(gateway) -> None:
    url = "/api/v1/prompts/generate"
    body = {"subject": "pears", "count": 2}
    retried = {**gateway.auth("ada"), "Idempotency-Key": f"key-{uuid.uuid4()}"}
    gateway.services.answers[streams.RPC_PROMPTS_GENERATE] = ServiceTimeout("No answer.")
    assert (await gateway.client.post(url, json=body, headers=retried)).status_code == 504
    gateway.services.answers[streams.RPC_PROMPTS_GENERATE] = NotFound("No such chat.")
    assert (await gateway.client.post(url, json=body, headers=retried)).status_code == 404
    assert (await _usage(gateway))["llm_calls"]["used"] == 0
