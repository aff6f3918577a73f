"""What a failed chaos audit says of a task that did not finish (`imagetron.chaos.audit`),
and where the stack's logs are once the run is over (`imagetron.testing.server_root`)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from imagetron.testing import kept_logs, server_root
from imagetron.unfinished_tasks import describe_unfinished
from imagetron_contracts.models.images import ProcessMode, TaskStatus
from imagetron_images.adapters.unit_of_work import ImagesUnitOfWork
from imagetron_images.app.messages import enqueue_submission
from imagetron_images.app.tasks import SUBMIT_CONSUMER
from imagetron_images.domain import GenerationTask
from imagetron_images.migrations import upgrade
from imagetron_platform.db import make_engine, make_session_factory

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
LOST = "The provider stayed unavailable after 10 attempts: 503 Service Unavailable"


def _api_images(task_id: uuid.UUID) -> httpx.AsyncClient:
    """The gateway's image listing of the task: one version stored, one failing."""

    def listing(request: httpx.Request) -> httpx.Response:
        assert request.url.params["task_id"] == str(task_id)
        return httpx.Response(200, json={"items": [
            {"index": 1, "is_persisted": True, "attempts": 1, "error": None},
            {"index": 2, "is_persisted": False, "attempts": 3, "error": "read timed out"},
        ]})  # fmt: skip

    return httpx.AsyncClient(base_url="http://gateway", transport=httpx.MockTransport(listing))


@pytest.mark.integration
async def test_an_unfinished_task_is_told_with_its_status_submissions_and_last_error(
    postgres_dsn: str, postgres_asyncpg_dsn: str
) -> None:
    await asyncio.to_thread(upgrade, postgres_dsn)
    task, _ = GenerationTask.imagine(
        owner_id=uuid.uuid4(), prompt_id=uuid.uuid4(), prompt_text="a quince", aspect_ratio="1:1",
        process_mode=ProcessMode.fast, provider="goapi", now=T0,
    )  # fmt: skip
    task.status, task.provider_task_id, task.resubmissions = TaskStatus.submitted, "p-7", 1
    task.error, task.polls = LOST, 2
    task.dispatched_at, task.submitted_at = T0, T0 + timedelta(seconds=1)
    engine = make_engine(postgres_dsn)
    try:
        async with ImagesUnitOfWork(make_session_factory(engine)) as uow:
            await uow.tasks.add(task)
            await enqueue_submission(uow, task)
            await enqueue_submission(uow, task)
            await uow.commit()
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(postgres_asyncpg_dsn)
    try:  # the first job published and applied, the second still in the outbox
        first = await conn.fetchval(
            "UPDATE images.outbox SET published_at = now() WHERE seq = (SELECT min(seq) FROM"
            " images.outbox WHERE payload->>'task_id' = $1) RETURNING id::text",
            str(task.id),
        )
        await conn.execute(
            "INSERT INTO images.inbox VALUES ($1, $2, now())", SUBMIT_CONSUMER, first
        )
    finally:
        await conn.close()
    shown = {"status": "submitted", "error": LOST, "resubmissions": 1, "provider_task_id": "p-7"}

    async with _api_images(task.id) as client:
        told = await describe_unfinished(postgres_asyncpg_dsn, client, {str(task.id): shown}, 5)

    line = told[str(task.id)]
    assert f"API: submitted, error {LOST!r}, resubmissions 1, provider task p-7" in line
    assert "images: 1 of 5 stored (#2 3 attempts, error 'read timed out')" in line
    assert "slot 10:00:00.000, accepted 10:00:01.000, 2 polls without news" in line
    assert "submission jobs: 2 written, 1 published, 1 applied" in line


def test_the_logs_of_a_server_root_are_kept_where_a_failure_can_name_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    name = f"kept-{uuid.uuid4().hex[:8]}"
    with server_root(tmp_path_factory, name) as root:
        (root / "logs").mkdir()
        (root / "logs" / "images-1.log").write_text("task 42: could not fetch it\n")
        (root / "nats" / "n1").mkdir(parents=True)
        (root / "nats" / "n1" / "nats.log").write_text("[INF] JetStream cluster\n")
        (root / "postgres").mkdir()
        (root / "postgres" / "pg_control").write_bytes(b"data, not a log")
        (root / "s3" / "data").mkdir(parents=True)
        (root / "s3" / "data" / "000003.log").write_bytes(b"a LevelDB journal")
    kept = kept_logs(tmp_path_factory, name)
    assert not root.exists()
    assert (kept / "logs" / "images-1.log").read_text() == "task 42: could not fetch it\n"
    assert (kept / "nats" / "n1" / "nats.log").read_text() == "[INF] JetStream cluster\n"
    assert not (kept / "postgres" / "pg_control").exists()
    assert not (kept / "s3" / "data").exists()
