"""Idempotency-Key on creating requests: sent again with its key, a request is answered as
the first time and not done again.

A key belongs to its user (another user's same key is another key) and lives `ttl` (a day).
Its first request claims it in PostgreSQL, so every gateway replica agrees; the answer is
kept once it succeeded (2xx). Sent again with the same fingerprint (operation and body), the
request gets that answer; with another, a 422; while the first is still being answered, a
409 to retry shortly. A first request that failed gives its key back, so the client can try
again with it; one whose replica died holds the key for `lock` at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from imagetron_gateway.app.ports import Answer, IdentityUnitOfWork
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Conflict, InvalidRequest
from imagetron_platform.pruning import remove_in_batches

#: Claims tried when the key's first request gives it back just as this one looks at it.
_CLAIM_ATTEMPTS = 3


class IdempotentRequests:
    def __init__(
        self, uow_factory: Callable[[], IdentityUnitOfWork], *, ttl: timedelta, lock: timedelta
    ) -> None:
        self._uow_factory = uow_factory
        self._ttl = ttl
        self._lock = lock

    async def begin(self, user_id: UUID, key: str, fingerprint: str) -> Answer | None:
        """None: this request holds the key and is answered now (then `finish` or `abandon`);
        otherwise the first request's answer. Raises InvalidRequest (the key was sent with
        another request) or Conflict (its first request is still being answered)."""
        for _ in range(_CLAIM_ATTEMPTS):
            now = utcnow()
            async with self._uow_factory() as uow:
                if await uow.idempotency.claim(
                    user_id, key, fingerprint, now, now + self._ttl, now + self._lock
                ):
                    await uow.commit()
                    return None
                record = await uow.idempotency.get(user_id, key, now)
            if record is None:
                continue  # given back meanwhile
            if record.fingerprint != fingerprint:
                raise InvalidRequest(
                    "This Idempotency-Key was sent with another request (a different body or "
                    "operation) in the last "
                    f"{_hours(self._ttl)}; send a new key with a new request."
                )
            if record.answer is None:
                raise _in_progress()
            return record.answer
        raise _in_progress()

    async def finish(self, user_id: UUID, key: str, fingerprint: str, answer: Answer) -> None:
        async with self._uow_factory() as uow:
            await uow.idempotency.complete(user_id, key, fingerprint, answer)
            await uow.commit()

    async def abandon(self, user_id: UUID, key: str, fingerprint: str) -> None:
        async with self._uow_factory() as uow:
            await uow.idempotency.release(user_id, key, fingerprint)
            await uow.commit()

    async def remove_expired(self) -> int:
        """Forget every key expired by now, a batch per transaction; how many."""
        now = utcnow()
        return await remove_in_batches(
            self._uow_factory, lambda uow, batch: uow.idempotency.remove_expired(now, batch)
        )


def _in_progress() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still being answered; send it again in a "
        "moment to get its answer.",
        headers={"Retry-After": "1"},
    )


def _hours(ttl: timedelta) -> str:
    hours = math.ceil(ttl.total_seconds() / 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"
