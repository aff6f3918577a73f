"""Bounded uploads per agency account: one artist's hundreds of files never take every
upload worker, and an agency sees at most a few connections from one account."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from uuid import UUID

from imagetron_contracts.models.publications import Agency
from imagetron_publisher.app.ports import AccountBusy


class AccountSlots:
    """At most `per_account` uploads at once per (owner, agency) in this process. A full
    account is not waited for: `AccountBusy` lets the worker take another job and this one
    come back a little later."""

    def __init__(self, per_account: int) -> None:
        if per_account < 1:
            raise ValueError("per_account must be at least 1")
        self._per_account = per_account
        self._running: dict[tuple[UUID, Agency], int] = {}

    @contextlib.contextmanager
    def hold(self, owner_id: UUID, agency: Agency) -> Iterator[None]:
        key = (owner_id, agency)
        if self._running.get(key, 0) >= self._per_account:
            raise AccountBusy(f"{self._per_account} uploads of this account are running")
        self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]

    def running(self, owner_id: UUID, agency: Agency) -> int:
        return self._running.get((owner_id, agency), 0)
