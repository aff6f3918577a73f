"""Tasks and images in PostgreSQL (SQLAlchemy Core on the unit of work's session).

Rows map to plain domain objects here, explicitly, so the domain knows nothing of the
database. Repositories never commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Row,
    Subquery,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_contracts.models.images import (
    ImageKind,
    ProcessMode,
    TaskCommand,
    TaskStatus,
    VariationStrength,
)
from imagetron_images.adapters.tables import images, tasks
from imagetron_images.app.ports import ImagePageKey
from imagetron_images.domain import GenerationTask, Image
from imagetron_platform.db import update_row
from imagetron_platform.pagination import PageKey

#: A provider and command's typical duration is learned from at least this many tasks.
MIN_SAMPLES = 3


#: Built once: executed with a task's values (see `imagetron_platform.db.row_update`).
_ADD_TASK = pg_insert(tasks).on_conflict_do_nothing(index_elements=["id"])


class SqlTaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, task: GenerationTask) -> bool:
        added = await self._session.execute(_ADD_TASK, _task_values(task))
        return bool(getattr(added, "rowcount", 0))

    async def get(self, owner_id: UUID, task_id: UUID) -> GenerationTask | None:
        row = (
            await self._session.execute(
                select(tasks).where(tasks.c.id == task_id, tasks.c.owner_id == owner_id)
            )
        ).first()
        return _task(row) if row is not None else None

    async def get_for_update(self, task_id: UUID) -> GenerationTask | None:
        row = (
            await self._session.execute(
                select(tasks).where(tasks.c.id == task_id).with_for_update()
            )
        ).first()
        return _task(row) if row is not None else None

    async def update(self, task: GenerationTask) -> None:
        await update_row(self._session, tasks, _task_values(task))

    async def claim_due_for_poll(
        self,
        *,
        now: datetime,
        quiet_for: Mapping[tuple[str, TaskCommand], timedelta],
        default_quiet_for: timedelta,
        lease: timedelta,
        limit: int,
    ) -> Sequence[GenerationTask]:
        c = tasks.c
        quiet_since: ColumnElement[Any] = _at(now - default_quiet_for)
        if quiet_for:
            quiet_since = case(
                *(
                    (and_(c.provider == provider, c.command == command.value), _at(now - quiet))
                    for (provider, command), quiet in quiet_for.items()
                ),
                else_=quiet_since,
            )
        due = (
            select(c.id)
            .where(
                c.status.in_([TaskStatus.submitted.value, TaskStatus.processing.value]),
                or_(
                    c.poll_after <= now,
                    and_(c.poll_after.is_(None), c.updated_at <= quiet_since),
                ),
            )
            .order_by(c.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            # A CTE computed once: as `id IN (subquery)` PostgreSQL may run the LIMIT … SKIP
            # LOCKED subquery more than once, and each run skips other rows (a clean CI run
            # claimed six tasks with a limit of four).
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        rows = await self._session.execute(
            update(tasks)
            .where(c.id == due.c.id)
            .values(reconciled_at=now, poll_after=now + lease)
            .returning(*tasks.c)
        )
        return sorted((_task(row) for row in rows), key=lambda t: t.updated_at)

    async def renew_poll_claim(
        self, task_id: UUID, *, claimed_at: datetime, until: datetime
    ) -> bool:
        c = tasks.c
        renewed = await self._session.execute(
            update(tasks)
            .where(
                c.id == task_id,
                c.reconciled_at == claimed_at,
                c.status.in_([TaskStatus.submitted.value, TaskStatus.processing.value]),
            )
            .values(poll_after=until)
            .returning(c.id)
        )
        return renewed.first() is not None

    async def lock_overdue(self, now: datetime, limit: int) -> Sequence[GenerationTask]:
        query = (
            select(tasks)
            .where(_holding_a_slot(), tasks.c.deadline_at <= now)
            .order_by(tasks.c.deadline_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_task(row) for row in await self._session.execute(query)]

    async def typical_durations(
        self, since: datetime, quantile: float
    ) -> Mapping[tuple[str, TaskCommand], timedelta]:
        c = tasks.c
        took = func.extract("epoch", c.completed_at - c.submitted_at)
        query = (
            select(c.provider, c.command, func.percentile_cont(quantile).within_group(took))
            .where(
                c.status == TaskStatus.completed.value,
                c.completed_at >= since,
                c.submitted_at.is_not(None),
            )
            .group_by(c.provider, c.command)
            .having(func.count() >= MIN_SAMPLES)
        )
        return {
            (provider, TaskCommand(command)): timedelta(seconds=float(seconds))
            for provider, command, seconds in await self._session.execute(query)
        }

    async def lock_provider(self, provider: str) -> None:
        # Until the transaction ends: one dispatcher per provider at a time, across replicas.
        await self._session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"images.dispatch.{provider}"},
        )

    async def count_in_flight(self, provider: str) -> int:
        query = select(func.count()).where(tasks.c.provider == provider, _holding_a_slot())
        return int((await self._session.execute(query)).scalar_one())

    async def next_waiting(self, provider: str, limit: int) -> Sequence[GenerationTask]:
        queue = _fair_queue(provider)
        ids = list(
            (
                await self._session.execute(
                    select(queue.c.id)
                    .order_by(queue.c.turn, queue.c.created_at, queue.c.id)
                    .limit(limit)
                )
            ).scalars()
        )
        if not ids:
            return []
        locked = {
            row.id: _task(row)
            for row in await self._session.execute(
                select(tasks)
                .where(tasks.c.id.in_(ids), _waiting(provider))
                .with_for_update(skip_locked=True)
            )
        }
        return [locked[i] for i in ids if i in locked]

    async def queue_position(self, task: GenerationTask) -> int:
        queue = _fair_queue(task.provider)
        ranked = select(
            queue.c.id,
            func.row_number()
            .over(order_by=(queue.c.turn, queue.c.created_at, queue.c.id))
            .label("position"),
        ).subquery("ranked")
        position = (
            await self._session.execute(select(ranked.c.position).where(ranked.c.id == task.id))
        ).scalar_one_or_none()
        return int(position) if position is not None else 1

    async def count_by_state(self) -> tuple[dict[tuple[str, TaskStatus], int], dict[str, int]]:
        c = tasks.c
        waiting = and_(c.status == TaskStatus.pending.value, c.dispatched_at.is_(None))
        query = select(c.provider, c.status, func.count(), func.count().filter(waiting)).group_by(
            c.provider, c.status
        )
        by_state: dict[tuple[str, TaskStatus], int] = {}
        by_provider: dict[str, int] = {}
        for provider, status, count, waiting_count in await self._session.execute(query):
            by_state[(provider, TaskStatus(status))] = count
            if waiting_count:
                by_provider[provider] = by_provider.get(provider, 0) + waiting_count
        return by_state, by_provider

    async def list(
        self,
        owner_id: UUID,
        *,
        prompt_id: UUID | None,
        status: TaskStatus | None,
        after: PageKey | None,
        limit: int,
    ) -> Sequence[GenerationTask]:
        query = select(tasks).where(tasks.c.owner_id == owner_id)
        if prompt_id is not None:
            query = query.where(tasks.c.prompt_id == prompt_id)
        if status is not None:
            query = query.where(tasks.c.status == status.value)
        if after is not None:
            query = query.where(
                or_(
                    tasks.c.created_at < after.created_at,
                    and_(tasks.c.created_at == after.created_at, tasks.c.id < after.id),
                )
            )
        query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
        return [_task(row) for row in await self._session.execute(query)]


class SqlImageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def count_by_state(self) -> dict[str, int]:
        c = images.c
        state = case((c.is_persisted, "stored"), (c.error.is_not(None), "failed"), else_="pending")
        query = select(state, func.count()).group_by(state)
        return {name: count for name, count in await self._session.execute(query)}

    async def add(self, new_images: Sequence[Image]) -> None:
        if new_images:
            await self._session.execute(insert(images), [_image_values(i) for i in new_images])

    async def get(self, owner_id: UUID, image_id: UUID) -> Image | None:
        row = (await self._session.execute(self._owned(owner_id, image_id))).first()
        return _image(row) if row is not None else None

    async def get_for_update(self, owner_id: UUID, image_id: UUID) -> Image | None:
        query = self._owned(owner_id, image_id).with_for_update()
        row = (await self._session.execute(query)).first()
        return _image(row) if row is not None else None

    async def update(self, image: Image) -> None:
        await update_row(self._session, images, _image_values(image))

    async def list(
        self,
        owner_id: UUID,
        *,
        task_id: UUID | None,
        prompt_id: UUID | None,
        kind: ImageKind | None,
        is_persisted: bool | None = None,
        after: ImagePageKey | None,
        limit: int,
    ) -> Sequence[Image]:
        query = select(images).where(images.c.owner_id == owner_id)
        if task_id is not None:
            query = query.where(images.c.task_id == task_id)
        if prompt_id is not None:
            query = query.where(images.c.prompt_id == prompt_id)
        if kind is not None:
            query = query.where(images.c.kind == kind.value)
        if is_persisted is not None:
            query = query.where(images.c.is_persisted == is_persisted)
        if after is not None:
            query = query.where(_after_image(after))
        query = query.order_by(
            images.c.created_at.desc(), images.c.task_id.desc(), images.c.index
        ).limit(limit)
        return [_image(row) for row in await self._session.execute(query)]

    @staticmethod
    def _owned(owner_id: UUID, image_id: UUID) -> Any:
        return select(images).where(images.c.id == image_id, images.c.owner_id == owner_id)


def _holding_a_slot() -> ColumnElement[bool]:
    c = tasks.c
    return or_(
        c.status.in_([TaskStatus.submitted.value, TaskStatus.processing.value]),
        and_(c.status == TaskStatus.pending.value, c.dispatched_at.is_not(None)),
    )


def _fair_queue(provider: str) -> Subquery:
    """The provider's waiting tasks with their fair-share `turn` (app.dispatch): how many
    tasks their owner has in flight, plus how many of the owner's waiting tasks are older."""
    c = tasks.c
    in_flight = (
        select(c.owner_id, func.count().label("n"))
        .where(c.provider == provider, _holding_a_slot())
        .group_by(c.owner_id)
        .subquery("in_flight")
    )
    older_of_owner = func.row_number().over(partition_by=c.owner_id, order_by=(c.created_at, c.id))
    return (
        select(
            c.id,
            c.created_at,
            (func.coalesce(in_flight.c.n, 0) + older_of_owner - 1).label("turn"),
        )
        .select_from(tasks.outerjoin(in_flight, in_flight.c.owner_id == c.owner_id))
        .where(_waiting(provider))
        .subquery("queue")
    )


def _at(moment: datetime) -> ColumnElement[datetime]:
    return literal(moment, DateTime(timezone=True))


def _waiting(provider: str) -> ColumnElement[bool]:
    return and_(
        tasks.c.provider == provider,
        tasks.c.status == TaskStatus.pending.value,
        tasks.c.dispatched_at.is_(None),
    )


def _after_image(key: ImagePageKey) -> ColumnElement[bool]:
    """Rows after `key` in the order (created_at desc, task_id desc, index asc)."""
    c = images.c
    return or_(
        c.created_at < key.created_at,
        and_(c.created_at == key.created_at, c.task_id < key.task_id),
        and_(c.created_at == key.created_at, c.task_id == key.task_id, c.index > key.index),
    )


def _task_values(task: GenerationTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "owner_id": task.owner_id,
        "prompt_id": task.prompt_id,
        "command": task.command.value,
        "status": task.status.value,
        "progress": task.progress,
        "provider": task.provider,
        "provider_task_id": task.provider_task_id,
        "prompt_text": task.prompt_text,
        "prompt_title": task.prompt_title,
        "aspect_ratio": task.aspect_ratio,
        "process_mode": task.process_mode.value,
        "origin_task_id": task.origin_task_id,
        "origin_index": task.origin_index,
        "variation_strength": (
            task.variation_strength.value if task.variation_strength is not None else None
        ),
        "preview_url": task.preview_url,
        "error": task.error,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "completed_at": task.completed_at,
        "reconciled_at": task.reconciled_at,
        "dispatched_at": task.dispatched_at,
        "submitted_at": task.submitted_at,
        "deadline_at": task.deadline_at,
        "polls": task.polls,
        "poll_after": task.poll_after,
        "resubmit_if_lost": task.resubmit_if_lost,
        "resubmissions": task.resubmissions,
        "abandoned_provider_task_ids": list(task.abandoned_provider_task_ids),
        "version": task.version,
    }


def _task(row: Row[Any]) -> GenerationTask:
    m = row._mapping
    return GenerationTask(
        id=m["id"],
        owner_id=m["owner_id"],
        prompt_id=m["prompt_id"],
        command=TaskCommand(m["command"]),
        status=TaskStatus(m["status"]),
        progress=m["progress"],
        provider=m["provider"],
        provider_task_id=m["provider_task_id"],
        prompt_text=m["prompt_text"],
        prompt_title=m["prompt_title"],
        aspect_ratio=m["aspect_ratio"],
        process_mode=ProcessMode(m["process_mode"]),
        origin_task_id=m["origin_task_id"],
        origin_index=m["origin_index"],
        variation_strength=(
            VariationStrength(m["variation_strength"]) if m["variation_strength"] else None
        ),
        preview_url=m["preview_url"],
        error=m["error"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        reconciled_at=m["reconciled_at"],
        dispatched_at=m["dispatched_at"],
        submitted_at=m["submitted_at"],
        deadline_at=m["deadline_at"],
        polls=m["polls"],
        poll_after=m["poll_after"],
        resubmit_if_lost=m["resubmit_if_lost"],
        resubmissions=m["resubmissions"],
        abandoned_provider_task_ids=tuple(m["abandoned_provider_task_ids"]),
        version=m["version"],
    )


def _image_values(image: Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "owner_id": image.owner_id,
        "task_id": image.task_id,
        "prompt_id": image.prompt_id,
        "kind": image.kind.value,
        "index": image.index,
        "source_url": image.source_url,
        "is_persisted": image.is_persisted,
        "storage_key": image.storage_key,
        "content_type": image.content_type,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
        "sha256": image.sha256,
        "error": image.error,
        "attempts": image.attempts,
        "created_at": image.created_at,
        "updated_at": image.updated_at,
        "persisted_at": image.persisted_at,
        "thumbnail_key": image.thumbnail_key,
        "version": image.version,
    }


def _image(row: Row[Any]) -> Image:
    m = row._mapping
    return Image(
        id=m["id"],
        owner_id=m["owner_id"],
        task_id=m["task_id"],
        prompt_id=m["prompt_id"],
        kind=ImageKind(m["kind"]),
        index=m["index"],
        source_url=m["source_url"],
        is_persisted=m["is_persisted"],
        storage_key=m["storage_key"],
        content_type=m["content_type"],
        size_bytes=m["size_bytes"],
        width=m["width"],
        height=m["height"],
        sha256=m["sha256"],
        error=m["error"],
        attempts=m["attempts"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        persisted_at=m["persisted_at"],
        thumbnail_key=m["thumbnail_key"],
        version=m["version"],
    )
