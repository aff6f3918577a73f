"""Every task ends: ask providers about quiet tasks, and give up the ones that are lost.

Providers do not guarantee delivery of their callbacks (GoAPI says so; midjourney-proxy
never retries), and a provider may forget a task (it restarted, expired it). Each round:

1. Tasks past their deadline are given up (failed with the reason, or sent again where the
   owner opted in), which frees their slot; the provider is asked to stop them.
2. A submitted or processing task that has been quiet for longer than its command usually
   takes at its provider (`Expectations`: learned from recent completions, never less
   than a floor) is fetched from its provider at once; while nothing changes it is asked
   again after growing delays. What comes back goes through exactly the rules a callback
   does, so a late callback and a reconciliation can race without applying anything
   twice. A provider that no longer knows the task gives it up at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from imagetron_contracts.models.images import TaskCommand
from imagetron_images.app.callbacks import record_provider_update
from imagetron_images.app.dispatch import Slots
from imagetron_images.app.messages import emit_task_change, enqueue_submission
from imagetron_images.app.ports import (
    ImageProvider,
    PermanentError,
    ProviderTaskNotFound,
    TransientError,
    UnitOfWork,
)
from imagetron_images.app.tasks import stop_at_provider
from imagetron_images.app.views import capabilities
from imagetron_images.domain import GenerationTask, ProviderUpdate, TaskChange, TaskResubmitted
from imagetron_platform.clock import utcnow

log = logging.getLogger(__name__)


#: What a claim covers besides the poll itself: the moment between renewing it and asking
#: the provider, and the difference between replicas' clocks.
LEASE_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True)
class ReconcilePolicy:
    """`poll_timeout`: the longest a provider is given to answer one poll (its request
    timeout); `floor`: the least quiet time before a task is asked about; after a poll
    without news the next comes `retry_first` later, doubling up to `retry_max`;
    `batch_size` tasks per round."""

    poll_timeout: timedelta
    floor: timedelta = timedelta(seconds=30)
    retry_first: timedelta = timedelta(seconds=15)
    retry_max: timedelta = timedelta(minutes=10)
    batch_size: int = 50

    @property
    def lease(self) -> timedelta:
        """How long a claimed task is left to the replica that claimed it: one poll. The
        replica renews its claim before each poll, so a batch may take longer; a replica that
        died leaves its claims to the others this soon."""
        return self.poll_timeout + LEASE_MARGIN

    def retry_after(self, polls: int) -> timedelta:
        """The wait after the `polls`-th poll in a row that brought no news."""
        return min(self.retry_first * (1 << max(polls - 1, 0)), self.retry_max)


@dataclass
class Expectations:
    """How long each provider's commands usually take (the `quantile` of recent durations
    from acceptance to completion), refreshed from the database every `refresh_every`."""

    floor: timedelta
    quantile: float = 0.9
    window: timedelta = timedelta(days=1)
    refresh_every: timedelta = timedelta(minutes=1)
    learned: Mapping[tuple[str, TaskCommand], timedelta] = field(default_factory=dict)
    refreshed_at: datetime | None = None

    async def refresh(self, uow: UnitOfWork, now: datetime) -> None:
        if self.refreshed_at is not None and now - self.refreshed_at < self.refresh_every:
            return
        async with uow:
            self.learned = await uow.tasks.typical_durations(now - self.window, self.quantile)
        self.refreshed_at = now

    def thresholds(self) -> Mapping[tuple[str, TaskCommand], timedelta]:
        """How long a task may be quiet before its provider is asked about it, for each
        provider and command learned (the floor for the others)."""
        return {key: max(self.floor, typical) for key, typical in self.learned.items()}


@dataclass(frozen=True)
class RoundReport:
    given_up: int = 0
    polled: int = 0
    changed: int = 0


async def reconcile(
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    *,
    expectations: Expectations,
    policy: ReconcilePolicy,
    slots: Slots,
) -> RoundReport:
    """One round: give up overdue tasks, then poll one batch of quiet ones."""
    now = utcnow()
    await expectations.refresh(uow, now)
    given_up = await give_up_overdue(uow, providers, slots=slots, limit=policy.batch_size)
    async with uow:
        claimed = await uow.tasks.claim_due_for_poll(
            now=now,
            quiet_for=expectations.thresholds(),
            default_quiet_for=expectations.floor,
            lease=policy.lease,
            limit=policy.batch_size,
        )
        await uow.commit()
    changed = 0
    for task in claimed:
        if await _poll(uow, providers, task, policy, slots):
            changed += 1
    report = RoundReport(given_up=given_up, polled=len(claimed), changed=changed)
    if given_up or claimed:
        log.info(
            "reconciliation: %d overdue tasks given up, %d quiet tasks polled, %d changed",
            report.given_up, report.polled, report.changed,
        )  # fmt: skip
    return report


async def give_up_overdue(
    uow: UnitOfWork, providers: Mapping[str, ImageProvider], *, slots: Slots, limit: int
) -> int:
    """Tasks past their deadline: the provider is asked one last time (a lost webhook may
    be all that is missing), then what is still unfinished is failed (or sent again) and
    stopped at its provider."""
    now = utcnow()
    async with uow:
        overdue = await uow.tasks.lock_overdue(now, limit)
    given_up = 0
    for candidate in overdue:
        update: ProviderUpdate | None = None
        change: TaskChange | None = None
        provider = providers.get(candidate.provider)
        if provider is not None and candidate.provider_task_id is not None:
            try:
                update = await provider.fetch(candidate.provider_task_id)
            except (TransientError, PermanentError) as exc:
                log.info("task %s: last look at %s failed: %s", candidate.id, provider.name, exc)
        abandoned: str | None = None
        async with uow:
            task = await uow.tasks.get_for_update(candidate.id)
            if task is None or task.provider_task_id != candidate.provider_task_id:
                continue  # it moved on meanwhile
            if update is not None and not task.is_terminal:
                await record_provider_update(
                    uow, task, update, capabilities(providers, task.provider)
                )
            abandoned = task.provider_task_id
            change = task.expire(utcnow(), slots.deadlines.of(task.provider, task.command))
            if change is not None:
                given_up += 1
                log.warning("task %s: %s", task.id, task.error)
                await _record(uow, task, change, providers)
            await uow.commit()
        if change is not None and abandoned is not None:
            await stop_at_provider(providers, task, abandoned)
    return given_up


async def _poll(
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    claimed: GenerationTask,
    policy: ReconcilePolicy,
    slots: Slots,
) -> bool:
    """Ask the provider about one claimed task and apply the answer under its lock.

    The claim is renewed first, for one poll (`policy.lease`), and the poll is cut off after
    `policy.poll_timeout`: a task is never asked about by two replicas at once, even when
    this one reaches it after its first claim ran out (the polls before it took long)."""
    provider = providers.get(claimed.provider)
    if provider is None or claimed.provider_task_id is None:
        log.warning("task %s: provider %r is not configured", claimed.id, claimed.provider)
        return False
    assert claimed.reconciled_at is not None  # set by the claim
    async with uow:
        renewed = await uow.tasks.renew_poll_claim(
            claimed.id, claimed_at=claimed.reconciled_at, until=utcnow() + policy.lease
        )
        await uow.commit()
    if not renewed:
        return False  # another replica claimed it since (or it finished)
    update: ProviderUpdate | None = None
    lost: str | None = None
    try:
        async with asyncio.timeout(policy.poll_timeout.total_seconds()):
            update = await provider.fetch(claimed.provider_task_id)
    except ProviderTaskNotFound as exc:
        lost = f"The provider {claimed.provider} no longer knows this task ({exc})."
    except (TransientError, PermanentError) as exc:
        log.warning("task %s: could not fetch it from %s: %s", claimed.id, claimed.provider, exc)
    except TimeoutError:
        log.warning(
            "task %s: %s did not answer within %s", claimed.id, claimed.provider,
            policy.poll_timeout,
        )  # fmt: skip
    return await _apply(
        uow, providers, claimed.id, claimed.provider_task_id, update, lost, policy, slots
    )


async def _apply(
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    task_id: UUID,
    asked_about: str,
    update: ProviderUpdate | None,
    lost: str | None,
    policy: ReconcilePolicy,
    slots: Slots,
) -> bool:
    now = utcnow()
    async with uow:
        task = await uow.tasks.get_for_update(task_id)
        if task is None or task.is_terminal or task.provider_task_id != asked_about:
            return False  # it moved on while we asked (a callback, a cancel, a resubmission)
        can = capabilities(providers, task.provider)
        changes: tuple[TaskChange, ...] = ()
        if lost is not None:
            log.warning("task %s: %s", task.id, lost)
            change = task.give_up(lost, now, slots.deadlines.of(task.provider, task.command))
            if change is not None:
                await _record(uow, task, change, providers)
                changes = (change,)
        elif update is not None:
            changes = await record_provider_update(uow, task, update, can)
        if not changes:
            task.polled_without_news(now, policy.retry_after(task.polls + 1))
            await uow.tasks.update(task)
        await uow.commit()
    return bool(changes)


async def _record(
    uow: UnitOfWork,
    task: GenerationTask,
    change: TaskChange,
    providers: Mapping[str, ImageProvider],
) -> None:
    await uow.tasks.update(task)
    await emit_task_change(uow, change, capabilities(providers, task.provider))
    if isinstance(change, TaskResubmitted):
        await enqueue_submission(uow, task)
