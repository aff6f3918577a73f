"""What a chaos run's audit says of each task that did not finish, so that a failure in CI
explains itself: the task as the API shows it (status, last error, resubmissions, images
stored) and as the images service's database holds it (when it got its slot and was
accepted, its polls, its deadline, and its submission jobs: written to the outbox,
published, applied)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from imagetron_contracts.streams import WORK_IMAGES_SUBMIT
from imagetron_images.app.tasks import SUBMIT_CONSUMER

#: Each of a task's submission jobs (outbox rows), whether the relay published it and
#: whether the submission consumer applied it (its inbox row).
_TASKS = """
SELECT t.id::text AS id, t.status, t.provider_task_id, t.resubmissions, t.error,
       t.dispatched_at, t.submitted_at, t.polls, t.reconciled_at, t.poll_after,
       t.deadline_at, t.updated_at, jobs.written, jobs.published, jobs.applied
FROM images.tasks t
LEFT JOIN LATERAL (
    SELECT count(*) AS written, count(o.published_at) AS published,
           count(i.message_id) AS applied
    FROM images.outbox o
    LEFT JOIN images.inbox i ON i.consumer = $2 AND i.message_id = o.id::text
    WHERE o.subject = $3 AND o.payload->>'task_id' = t.id::text
) jobs ON true
WHERE t.id = ANY($1::uuid[])
"""

#: How long the database may take to answer (the audit runs after the stack has healed).
DATABASE_SECONDS = 10.0


async def describe_unfinished(
    database_url: str,
    client: httpx.AsyncClient,
    tasks: dict[str, dict[str, Any]],
    images_per_task: int,
) -> dict[str, str]:
    """One line for each of `tasks` (task id -> the task as the API last showed it):
    `database_url` is the stack's PostgreSQL (libpq form), `client` the tasks' owner's."""
    if not tasks:
        return {}
    try:
        rows = await _rows(database_url, list(tasks))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        unreadable = f"database: not read ({type(exc).__name__}: {exc})"
        return {task_id: f"{_api(task)}; {unreadable}" for task_id, task in tasks.items()}
    described = {}
    for task_id, task in tasks.items():
        images = await _images(client, task_id, images_per_task)
        row = rows.get(task_id)
        database = _database(row) if row is not None else "database: no such task"
        described[task_id] = f"{_api(task)}; {images}; {database}"
    return described


async def _rows(database_url: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(database_url, timeout=DATABASE_SECONDS)
    try:
        found = await conn.fetch(
            _TASKS, task_ids, SUBMIT_CONSUMER, WORK_IMAGES_SUBMIT, timeout=DATABASE_SECONDS
        )
    finally:
        await conn.close()
    return {row["id"]: dict(row) for row in found}


def _api(task: dict[str, Any]) -> str:
    return (
        f"API: {task.get('status')}, error {task.get('error')!r}, "
        f"resubmissions {task.get('resubmissions')}, provider task {task.get('provider_task_id')}, "
        f"updated {task.get('updated_at')}"
    )


async def _images(client: httpx.AsyncClient, task_id: str, expected: int) -> str:
    listed: list[dict[str, Any]] | None = None
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        listed = (await client.get("/api/v1/images", params={"task_id": task_id})).json()["items"]
    if listed is None:
        return "images: not listed"
    stored = sum(bool(i.get("is_persisted")) for i in listed)
    failing = [
        f"#{i.get('index')} {i.get('attempts')} attempts, error {i.get('error')!r}"
        for i in listed
        if not i.get("is_persisted")
    ]
    return f"images: {stored} of {expected} stored" + (
        f" ({', '.join(failing)})" if failing else ""
    )


def _database(row: dict[str, Any]) -> str:
    return (
        f"database: {row['status']}, slot {_at(row['dispatched_at'])}, "
        f"accepted {_at(row['submitted_at'])}, {row['polls']} polls without news "
        f"(last {_at(row['reconciled_at'])}, next {_at(row['poll_after'])}), "
        f"deadline {_at(row['deadline_at'])}, updated {_at(row['updated_at'])}, "
        f"submission jobs: {row['written']} written, {row['published']} published, "
        f"{row['applied']} applied"
    )


def _at(moment: datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%H:%M:%S.%f")[:-3]
