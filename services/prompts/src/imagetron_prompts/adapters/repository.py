"""Prompts in PostgreSQL. Repositories read and write inside the unit of work's session and
never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_prompts.adapters.tables import prompt_tasks, prompts
from imagetron_prompts.app.ports import PageKey
from imagetron_prompts.domain.prompt import Prompt, TaskPhase


def _to_prompt(row: Row[Any]) -> Prompt:
    return Prompt(
        id=row.id,
        owner_id=row.owner_id,
        text=row.text,
        title=row.title,
        status=row.status,
        generation_state=row.generation_state,
        active_tasks=row.active_tasks,
        completed_tasks=row.completed_tasks,
        failed_tasks=row.failed_tasks,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(prompt: Prompt) -> dict[str, Any]:
    return {
        "owner_id": prompt.owner_id,
        "text": prompt.text,
        "title": prompt.title,
        "status": prompt.status,
        "generation_state": prompt.generation_state,
        "active_tasks": prompt.active_tasks,
        "completed_tasks": prompt.completed_tasks,
        "failed_tasks": prompt.failed_tasks,
        "created_at": prompt.created_at,
        "updated_at": prompt.updated_at,
    }


class SqlPromptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, prompt: Prompt) -> None:
        await self._session.execute(insert(prompts).values(id=prompt.id, **_values(prompt)))

    async def get(
        self, owner_id: UUID, prompt_id: UUID, *, for_update: bool = False
    ) -> Prompt | None:
        query = select(prompts).where(prompts.c.id == prompt_id, prompts.c.owner_id == owner_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return _to_prompt(row) if row is not None else None

    async def save(self, prompt: Prompt) -> None:
        await self._session.execute(
            update(prompts)
            .where(prompts.c.id == prompt.id, prompts.c.owner_id == prompt.owner_id)
            .values(**_values(prompt))
        )

    async def list_page(
        self, owner_id: UUID, *, limit: int, after: PageKey | None
    ) -> Sequence[Prompt]:
        query = select(prompts).where(prompts.c.owner_id == owner_id)
        if after is not None:
            query = query.where(
                tuple_(prompts.c.created_at, prompts.c.id) < tuple_(after.created_at, after.id)
            )
        query = query.order_by(prompts.c.created_at.desc(), prompts.c.id.desc()).limit(limit)
        return [_to_prompt(row) for row in await self._session.execute(query)]

    async def task_phase(self, prompt_id: UUID, task_id: UUID) -> TaskPhase | None:
        phase: TaskPhase | None = await self._session.scalar(
            select(prompt_tasks.c.phase).where(
                prompt_tasks.c.task_id == task_id, prompt_tasks.c.prompt_id == prompt_id
            )
        )
        return phase

    async def save_task_phase(
        self, prompt_id: UUID, task_id: UUID, phase: TaskPhase, now: datetime
    ) -> None:
        statement = pg_insert(prompt_tasks).values(
            task_id=task_id, prompt_id=prompt_id, phase=phase, updated_at=now
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[prompt_tasks.c.task_id],
                set_={
                    "phase": statement.excluded.phase,
                    "updated_at": statement.excluded.updated_at,
                },
                where=prompt_tasks.c.prompt_id == prompt_id,
            )
        )
