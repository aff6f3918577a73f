"""Prompts, chats and the language-model ledger in PostgreSQL. Repositories read and write
inside the unit of work's session and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_platform.pagination import PageKey
from imagetron_platform.pruning import delete_batch
from imagetron_prompts.adapters.tables import (
    chat_messages,
    chats,
    deleted_prompts,
    llm_calls,
    prompt_tasks,
    prompts,
)
from imagetron_prompts.app.ports import LlmCall, LlmOutcome, LlmPurpose, PromptFilter
from imagetron_prompts.domain.chat import Chat, ChatMessage
from imagetron_prompts.domain.prompt import Prompt, TaskPhase
from imagetron_prompts.domain.usage import TokenUsage


def _like_pattern(text: str) -> str:
    """`%text%` for ILIKE, with the pattern characters in `text` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _to_prompt(row: Row[Any]) -> Prompt:
    return Prompt(
        id=row.id,
        owner_id=row.owner_id,
        chat_id=row.chat_id,
        text=row.text,
        title=row.title,
        status=row.status,
        generation_state=row.generation_state,
        active_tasks=row.active_tasks,
        completed_tasks=row.completed_tasks,
        failed_tasks=row.failed_tasks,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _values(prompt: Prompt) -> dict[str, Any]:
    return {
        "owner_id": prompt.owner_id,
        "chat_id": prompt.chat_id,
        "text": prompt.text,
        "title": prompt.title,
        "status": prompt.status,
        "generation_state": prompt.generation_state,
        "active_tasks": prompt.active_tasks,
        "completed_tasks": prompt.completed_tasks,
        "failed_tasks": prompt.failed_tasks,
        "created_at": prompt.created_at,
        "updated_at": prompt.updated_at,
        "version": prompt.version,
    }


class SqlPromptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, prompt: Prompt) -> bool:
        added = await self._session.execute(
            pg_insert(prompts)
            .values(id=prompt.id, **_values(prompt))
            .on_conflict_do_nothing(index_elements=["id"])
        )
        return bool(getattr(added, "rowcount", 0))

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

    async def delete(self, prompt: Prompt) -> None:
        await self._session.execute(
            delete(prompts).where(prompts.c.id == prompt.id, prompts.c.owner_id == prompt.owner_id)
        )
        await self._session.execute(
            pg_insert(deleted_prompts)
            .values(id=prompt.id, owner_id=prompt.owner_id, deleted_at=prompt.updated_at)
            .on_conflict_do_nothing(index_elements=["id"])
        )

    async def was_deleted(self, owner_id: UUID, prompt_id: UUID) -> bool:
        gone = deleted_prompts.c
        return bool(
            await self._session.scalar(
                select(exists().where(gone.id == prompt_id, gone.owner_id == owner_id))
            )
        )

    async def forget_deleted(self, before: datetime, limit: int) -> int:
        gone = deleted_prompts.c
        old = select(gone.id).where(gone.deleted_at < before)
        return await delete_batch(self._session, deleted_prompts, gone.id, old, limit)

    async def linked_to_chat(self, owner_id: UUID, chat_id: UUID) -> Sequence[Prompt]:
        query = (
            select(prompts)
            .where(prompts.c.owner_id == owner_id, prompts.c.chat_id == chat_id)
            .order_by(prompts.c.created_at, prompts.c.id)
            .with_for_update()
        )
        return [_to_prompt(row) for row in await self._session.execute(query)]

    async def list_page(
        self,
        owner_id: UUID,
        *,
        limit: int,
        after: PageKey | None,
        where: PromptFilter | None = None,
    ) -> Sequence[Prompt]:
        query = select(prompts).where(prompts.c.owner_id == owner_id)
        if where is not None:
            if where.status is not None:
                query = query.where(prompts.c.status == where.status)
            if where.chat_id is not None:
                query = query.where(prompts.c.chat_id == where.chat_id)
            if where.text:
                # A sequential filter over the owner's rows (they are read in index order
                # anyway); a trigram index is the next step if owners get very many prompts.
                pattern = _like_pattern(where.text)
                query = query.where(
                    or_(
                        prompts.c.text.ilike(pattern, escape="\\"),
                        prompts.c.title.ilike(pattern, escape="\\"),
                    )
                )
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

    async def task_version(self, prompt_id: UUID, task_id: UUID) -> int:
        version: int | None = await self._session.scalar(
            select(prompt_tasks.c.task_version).where(
                prompt_tasks.c.task_id == task_id, prompt_tasks.c.prompt_id == prompt_id
            )
        )
        return version or 0

    async def save_task_phase(
        self, prompt_id: UUID, task_id: UUID, phase: TaskPhase, now: datetime, version: int = 0
    ) -> None:
        statement = pg_insert(prompt_tasks).values(
            task_id=task_id, prompt_id=prompt_id, phase=phase, updated_at=now, task_version=version
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[prompt_tasks.c.task_id],
                set_={
                    "phase": statement.excluded.phase,
                    "updated_at": statement.excluded.updated_at,
                    "task_version": func.greatest(
                        prompt_tasks.c.task_version, statement.excluded.task_version
                    ),
                },
                where=prompt_tasks.c.prompt_id == prompt_id,
            )
        )

    async def reservations_before(
        self, moment: datetime, limit: int
    ) -> Sequence[tuple[UUID, UUID, UUID]]:
        query = (
            select(prompts.c.owner_id, prompt_tasks.c.prompt_id, prompt_tasks.c.task_id)
            .join(prompts, prompts.c.id == prompt_tasks.c.prompt_id)
            .where(
                prompt_tasks.c.phase == TaskPhase.RESERVED,
                prompt_tasks.c.updated_at < moment,
            )
            .order_by(prompt_tasks.c.updated_at)
            .limit(limit)
        )
        return [
            (row.owner_id, row.prompt_id, row.task_id) for row in await self._session.execute(query)
        ]


def _usage(row: Row[Any]) -> TokenUsage | None:
    if row.llm_call_id is None or row.model is None:
        return None
    return _usage_of_call(row)


def _usage_of_call(row: Row[Any]) -> TokenUsage:
    return TokenUsage(
        model=row.model,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        attempts=row.attempts,
    )


def _to_message(row: Row[Any]) -> ChatMessage:
    return ChatMessage(
        id=row.id,
        chat_id=row.chat_id,
        position=row.position,
        role=row.role,
        content=row.content,
        created_at=row.created_at,
        subjects=tuple(row.subjects),
        llm_call_id=row.llm_call_id,
        usage=_usage(row),
    )


def _to_chat(row: Row[Any]) -> Chat:
    return Chat(
        id=row.id,
        owner_id=row.owner_id,
        title=row.title,
        message_count=row.message_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


class SqlChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, chat: Chat) -> None:
        await self._session.execute(
            insert(chats).values(
                id=chat.id,
                owner_id=chat.owner_id,
                title=chat.title,
                message_count=chat.message_count,
                created_at=chat.created_at,
                updated_at=chat.updated_at,
                version=chat.version,
            )
        )
        await self._insert_messages(chat.messages)

    async def get(
        self, owner_id: UUID, chat_id: UUID, *, for_update: bool = False, messages: bool = True
    ) -> Chat | None:
        query = select(chats).where(chats.c.id == chat_id, chats.c.owner_id == owner_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        chat = _to_chat(row)
        if messages:
            history = (
                select(
                    chat_messages,
                    llm_calls.c.model,
                    llm_calls.c.prompt_tokens,
                    llm_calls.c.completion_tokens,
                    llm_calls.c.attempts,
                )
                .select_from(
                    chat_messages.outerjoin(
                        llm_calls, llm_calls.c.id == chat_messages.c.llm_call_id
                    )
                )
                .where(chat_messages.c.chat_id == chat.id)
                .order_by(chat_messages.c.position)
            )
            chat.messages = [_to_message(r) for r in await self._session.execute(history)]
        return chat

    async def add_messages(self, chat: Chat, messages: Sequence[ChatMessage]) -> None:
        await self._insert_messages(messages)
        await self._session.execute(
            update(chats)
            .where(chats.c.id == chat.id, chats.c.owner_id == chat.owner_id)
            .values(
                message_count=chat.message_count,
                updated_at=chat.updated_at,
                version=chat.version,
            )
        )

    async def _insert_messages(self, messages: Sequence[ChatMessage]) -> None:
        if not messages:
            return
        await self._session.execute(
            insert(chat_messages),
            [
                {
                    "id": m.id,
                    "chat_id": m.chat_id,
                    "position": m.position,
                    "role": m.role,
                    "content": m.content,
                    "subjects": list(m.subjects),
                    "llm_call_id": m.llm_call_id,
                    "created_at": m.created_at,
                }
                for m in messages
            ],
        )

    async def delete(self, chat: Chat) -> None:
        await self._session.execute(
            delete(chats).where(chats.c.id == chat.id, chats.c.owner_id == chat.owner_id)
        )

    async def list_page(
        self, owner_id: UUID, *, limit: int, after: PageKey | None
    ) -> Sequence[Chat]:
        query = select(chats).where(chats.c.owner_id == owner_id)
        if after is not None:
            query = query.where(
                tuple_(chats.c.created_at, chats.c.id) < tuple_(after.created_at, after.id)
            )
        query = query.order_by(chats.c.created_at.desc(), chats.c.id.desc()).limit(limit)
        return [_to_chat(row) for row in await self._session.execute(query)]


class SqlLlmCallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, call: LlmCall) -> bool:
        added = await self._session.execute(
            pg_insert(llm_calls)
            .values(
                id=call.id,
                owner_id=call.owner_id,
                purpose=call.purpose,
                outcome=call.outcome,
                model=call.usage.model,
                prompt_tokens=call.usage.prompt_tokens,
                completion_tokens=call.usage.completion_tokens,
                attempts=call.usage.attempts,
                chat_id=call.chat_id,
                prompt_id=call.prompt_id,
                detail=call.detail,
                created_at=call.created_at,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        return bool(getattr(added, "rowcount", 0))

    async def get(self, owner_id: UUID, call_id: UUID) -> LlmCall | None:
        query = select(llm_calls).where(llm_calls.c.id == call_id, llm_calls.c.owner_id == owner_id)
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        usage = _usage_of_call(row)
        kept = {k: row._mapping[k] for k in ("id", "owner_id", "created_at", "chat_id")}
        return LlmCall(
            **kept,
            purpose=LlmPurpose(row.purpose),
            outcome=LlmOutcome(row.outcome),
            usage=usage,
            prompt_id=row.prompt_id,
            detail=row.detail,
        )
