"""The periodic loops: reconcile quiet tasks (`app.reconciliation`) and dispatch waiting
ones into free provider slots (`app.dispatch`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from imagetron_images.app.dependencies import Dependencies
from imagetron_images.app.dispatch import dispatch_all
from imagetron_images.app.reconciliation import reconcile_quiet_tasks

log = logging.getLogger(__name__)


class ReconciliationLoop:
    """Every `interval_seconds`, one bounded batch; a failing round is logged and the next
    one tries again. Replicas each run one: the batches they claim do not overlap."""

    def __init__(
        self,
        deps: Dependencies,
        *,
        interval_seconds: float,
        quiet_for: timedelta,
        batch_size: int,
    ) -> None:
        self._deps = deps
        self._interval = interval_seconds
        self._quiet_for = quiet_for
        self._batch_size = batch_size

    async def run_once(self) -> int:
        return await reconcile_quiet_tasks(
            self._deps.new_uow(),
            self._deps.providers,
            quiet_for=self._quiet_for,
            batch_size=self._batch_size,
        )

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("reconciliation round failed; trying again next round")
            await asyncio.sleep(self._interval)


class DispatchLoop:
    """Every `interval_seconds`, hand the slots that finished tasks freed to waiting tasks
    (oldest first, per provider). A failing round is logged; the next one tries again."""

    def __init__(self, deps: Dependencies, *, interval_seconds: float) -> None:
        self._deps = deps
        self._interval = interval_seconds

    async def run_once(self) -> int:
        return await dispatch_all(
            self._deps.new_uow(), list(self._deps.providers), self._deps.max_in_flight
        )

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("dispatch round failed; trying again next round")
            await asyncio.sleep(self._interval)
