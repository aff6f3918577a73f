"""Property: whatever order, duplication and lateness GoAPI callbacks arrive in, against real
PostgreSQL every task ends in the state a small reference model predicts, and every event
(and every image with its persistence job) is written exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from imagetron_contracts.models.images import ProcessMode, ProviderCallback, TaskStatus
from imagetron_images.adapters.goapi import GoApiProvider
from imagetron_images.adapters.unit_of_work import ImagesUnitOfWork
from imagetron_images.app.callbacks import apply_provider_callback
from imagetron_images.domain import GenerationTask
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.jobs import Delivery

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TERMINAL = {"completed", "failed"}
FAILURE = "failed to generate image"


@dataclass(frozen=True)
class Report:
    """One state of the provider's task, as a callback reports it."""

    task: int
    kind: str  # queued | running | completed | failed
    progress: int = 0
    foreign: bool = False  # about another provider task (a stray or a replayed old one)

    def provider_task_id(self, tasks: list[GenerationTask]) -> str:
        return f"{'other' if self.foreign else 'mj'}-{tasks[self.task].id}"

    def body(self, tasks: list[GenerationTask]) -> dict[str, Any]:
        status = {"queued": "pending", "running": "processing"}.get(self.kind, self.kind)
        output: dict[str, Any] = {
            "task_progress": self.progress,
            "image_url": "",
            "image_urls": None,
        }
        if self.kind == "completed":
            output["image_url"] = "https://cdn.example/grid.png"
            output["image_urls"] = [f"https://cdn.example/{i}.png" for i in range(1, 5)]
        error = (
            {"code": 10000, "message": FAILURE}
            if self.kind == "failed"
            else {"code": 0, "message": ""}
        )
        return {
            "timestamp": 1764000000,
            "data": {
                "task_id": self.provider_task_id(tasks), "model": "midjourney",
                "task_type": "imagine", "status": status, "output": output, "error": error,
            },
        }  # fmt: skip


@dataclass
class Expected:
    """The reference model of one task: the rules, stated as simply as possible."""

    status: str
    provider_task_id: str | None
    progress: int = 0
    error: str | None = None
    events: Counter[str] = field(default_factory=Counter)

    def receive(self, report: Report, tasks: list[GenerationTask]) -> None:
        if self.status in TERMINAL | {"cancelled"}:
            return  # late
        reported_id = report.provider_task_id(tasks)
        if self.provider_task_id is not None and reported_id != self.provider_task_id:
            return  # not about our provider task
        if self.status == "pending":  # its first report overtook our record of the submission
            self.status, self.provider_task_id = "submitted", reported_id
            self.events["task.submitted"] += 1
        if report.kind == "running":
            if self.status == "submitted" or report.progress > self.progress:
                self.status = "processing"
                self.progress = max(self.progress, report.progress)
                self.events["task.progress"] += 1
        elif report.kind == "completed":
            self.status, self.progress = "completed", 100
            self.events["task.completed"] += 1
        elif report.kind == "failed":
            self.status, self.error = "failed", FAILURE
            self.events["task.failed"] += 1


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[bool], list[tuple[Report, int]]]:
    """Tasks (submitted or still pending here) and the deliveries of their reports: each
    report one to three times, some under the same message id (a redelivery), some under
    a new one (a provider retry), all shuffled; some tasks never get their final report."""
    n = draw(st.integers(1, 5))
    pending = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    deliveries: list[tuple[Report, int]] = []
    for task in range(n):
        steps = sorted(draw(st.sets(st.integers(1, 99), max_size=3)))
        reports = [Report(task, "queued")] + [Report(task, "running", p) for p in steps]
        outcome = draw(st.sampled_from(["completed", "failed", None]))
        if outcome is not None:
            reports.append(Report(task, outcome, 100 if outcome == "completed" else 0))
        if draw(st.booleans()):
            reports.append(Report(task, draw(st.sampled_from(["running", "completed"])), 50, True))
        for report in reports:
            copies = draw(st.lists(st.integers(0, 1), min_size=1, max_size=3))
            deliveries += [(report, copy) for copy in copies]
    return pending, draw(st.permutations(deliveries))


@pytest.fixture(scope="module")
async def engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(migrated)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def goapi() -> AsyncIterator[GoApiProvider]:
    async with httpx.AsyncClient() as client:  # parsing callbacks makes no call
        yield GoApiProvider(
            client, base_url="http://unused", api_key="k", webhook_public_base_url="http://gw",
            webhook_secret="s", webhook_token_key="t",
        )  # fmt: skip


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_any_delivery_of_callbacks_ends_as_the_model_predicts(
    engine: AsyncEngine, goapi: GoApiProvider, scenario: tuple[list[bool], list[tuple[Report, int]]]
) -> None:
    pending, deliveries = scenario
    factory = make_session_factory(engine)
    run = uuid4().hex  # message ids are unique to this example: the inbox outlives it
    tasks: list[GenerationTask] = []
    async with ImagesUnitOfWork(factory) as uow:
        for still_pending in pending:
            task, _ = GenerationTask.imagine(
                owner_id=uuid4(), prompt_id=uuid4(), prompt_text="p", aspect_ratio="1:1",
                process_mode=ProcessMode.fast, provider="goapi", now=T,
            )  # fmt: skip
            if not still_pending:
                task.accept_submission(f"mj-{task.id}", T)
            await uow.tasks.add(task)
            tasks.append(task)
        await uow.commit()
    models = [Expected(t.status.value, t.provider_task_id) for t in tasks]

    for report, copy in deliveries:
        message_id = f"{run}-{report}-{copy}"
        callback = ProviderCallback(
            provider="goapi", task_id=tasks[report.task].id, received_at=T,
            body=report.body(tasks),
        )  # fmt: skip
        await apply_provider_callback(
            callback, Delivery(message_id), ImagesUnitOfWork(factory), {"goapi": goapi}
        )
        # A redelivery (same id) is dropped by the inbox; the model need not know, as
        # the same report again changes nothing.
        models[report.task].receive(report, tasks)

    ids = [t.id for t in tasks]
    async with engine.begin() as conn:
        rows = {
            r.id: r
            for r in await conn.execute(
                text("SELECT id, status, progress, provider_task_id, error FROM images.tasks "
                     "WHERE id = ANY(:ids)"),
                {"ids": ids},
            )
        }  # fmt: skip
        events = Counter(
            (UUID(r.task_id), r.type)
            for r in await conn.execute(
                text("SELECT payload->'task'->>'id' AS task_id, payload->>'type' AS type "
                     "FROM images.outbox WHERE subject LIKE 'events.images.%' "
                     "AND payload->'task'->>'id' = ANY(:ids)"),
                {"ids": [str(i) for i in ids]},
            )
        )  # fmt: skip
        images = Counter(
            r.task_id
            for r in await conn.execute(
                text("SELECT task_id FROM images.images WHERE task_id = ANY(:ids)"), {"ids": ids}
            )
        )
        jobs = Counter(
            r.task_id
            for r in await conn.execute(
                text("SELECT i.task_id FROM images.outbox o JOIN images.images i "
                     "ON o.payload->>'image_id' = i.id::text "
                     "WHERE o.subject = 'work.images.persist' AND i.task_id = ANY(:ids)"),
                {"ids": ids},
            )
        )  # fmt: skip
        # Keep this example's rows out of later modules' way: nothing to publish, nothing
        # left for their reconciliation to ask a provider about.
        await conn.execute(
            text("UPDATE images.outbox SET published_at = now() WHERE published_at IS NULL "
                 "AND (payload->'task'->>'id' = ANY(:sids) OR payload->>'image_id' IN "
                 "(SELECT id::text FROM images.images WHERE task_id = ANY(:ids)))"),
            {"ids": ids, "sids": [str(i) for i in ids]},
        )  # fmt: skip
        await conn.execute(
            text("UPDATE images.tasks SET status = 'failed' WHERE id = ANY(:ids) "
                 "AND status IN ('pending', 'submitted', 'processing')"),
            {"ids": ids},
        )  # fmt: skip

    for task, model in zip(tasks, models, strict=True):
        row = rows[task.id]
        assert (TaskStatus(row.status).value, row.provider_task_id) == (
            model.status,
            model.provider_task_id,
        )
        assert row.progress == model.progress
        assert row.error == model.error
        assert {k[1]: v for k, v in events.items() if k[0] == task.id} == dict(model.events)
        expected_images = 5 if model.status == "completed" else 0
        assert images[task.id] == jobs[task.id] == expected_images
