"""A task's life: pending -> processing (progress updates) -> completed or failed.

Each task runs as a supervised background coroutine; its webhooks go out through its own
outbox coroutine so a slow receiver never holds the task itself back.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from imagetron_sandbox.goapi.models import TaskError
from imagetron_sandbox.goapi.plan import (
    GRID_ACTIONS,
    UPSCALE_ACTIONS,
    GridPlan,
    grid_name,
    preview_name,
    render_plan,
    split_name,
    upscale_name,
)
from imagetron_sandbox.goapi.store import TaskRecord
from imagetron_sandbox.goapi.webhooks import (
    WebhookDispatcher,
    WebhookSender,
    WebhookTarget,
    piapi_body,
)
from imagetron_sandbox.images.render import GridImages, render_preview
from imagetron_sandbox.images.store import ImageStore, StoredImage
from imagetron_sandbox.settings import SandboxSettings
from imagetron_sandbox.supervisor import Supervisor

logger = logging.getLogger(__name__)

GENERATION_FAILED = TaskError(
    code=10000,
    raw_message="imagetron-sandbox: injected generation failure",
    message="failed to generate image",
)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TaskLifecycle:
    def __init__(
        self,
        settings: SandboxSettings,
        images: ImageStore,
        sender: WebhookSender,
        supervisor: Supervisor,
    ) -> None:
        self._settings = settings
        self._images = images
        self._sender = sender
        self._supervisor = supervisor

    def start(self, record: TaskRecord, webhook: WebhookTarget | None = None) -> None:
        """Announce the new (pending) task and set it going in the background. Its
        notifications go to ``webhook``, by default to its PiAPI ``webhook_config``."""
        webhook = webhook or _piapi_target(record)
        if webhook is not None and not record.knobs.webhook_drop:
            record.outbox = WebhookDispatcher(self._sender, webhook, record.knobs)
            self._supervisor.spawn(record.outbox.run(), name=f"webhooks-{record.task_id}")
        self._emit(record)
        record.runner = self._supervisor.spawn(self._run(record), name=f"task-{record.task_id}")

    def cancel(self, record: TaskRecord) -> None:
        """Stop the task; it ends ``cancelled`` (and says so by webhook)."""
        if record.runner is not None:
            record.runner.cancel()
        task = record.task
        task.meta.usage.frozen = 0
        task.meta.ended_at = utc_now()
        task.status = "cancelled"
        self._emit(record, terminal=True)

    async def _run(self, record: TaskRecord) -> None:
        await asyncio.sleep((self._settings.pending_ms + record.knobs.queue_delay_ms) / 1000)
        task = record.task
        task.status = "processing"
        task.meta.started_at = utc_now()
        rendering = asyncio.ensure_future(asyncio.to_thread(render_plan, record.plan))
        try:
            for step in self._settings.progress_steps:
                task.output.progress = task.output.task_progress = step
                if step > 0 and isinstance(record.plan, GridPlan):
                    grid = await rendering
                    assert isinstance(grid, GridImages)
                    await self._add_preview(record, grid, step)
                self._emit(record)
                await asyncio.sleep(self._settings.progress_interval_ms / 1000)
            if record.knobs.generation_stuck:
                await asyncio.Event().wait()  # until the sandbox shuts down
            if record.knobs.generation_fail:
                self._finish_failed(record, GENERATION_FAILED)
                return
            result = await rendering
        except Exception as exc:
            logger.exception("rendering task %s failed", record.task_id)
            self._finish_failed(
                record, TaskError(code=500, raw_message=repr(exc), message="internal error")
            )
            return
        finally:
            rendering.cancel()
        self._finish_completed(record, result)

    async def _add_preview(self, record: TaskRecord, grid: GridImages, step: int) -> None:
        png = await asyncio.to_thread(render_preview, grid.grid, step)
        url = self._store(record, preview_name(record.task_id, step), png)
        previews = record.task.output.intermediate_image_urls or []
        record.task.output.intermediate_image_urls = [*previews, url]

    def _finish_completed(self, record: TaskRecord, result: GridImages | bytes) -> None:
        task, output = record.task, record.task.output
        if isinstance(result, GridImages):
            output.image_url = self._store(record, grid_name(record.task_id), result.grid)
            record.split_names = tuple(
                split_name(record.task_id, index) for index in range(1, len(result.splits) + 1)
            )
            split_urls = [
                self._store(record, name, png)
                for name, png in zip(record.split_names, result.splits, strict=True)
            ]
            output.image_urls = split_urls
            output.temporary_image_urls = list(split_urls)
            output.actions = list(GRID_ACTIONS)
        else:
            record.upscale_name = upscale_name(record.task_id)
            output.image_url = self._store(record, record.upscale_name, result)
            output.image_urls = [output.image_url]
            output.temporary_image_urls = [output.image_url]
            output.actions = list(UPSCALE_ACTIONS)
        output.progress = output.task_progress = 100
        task.meta.usage.consume = task.meta.usage.frozen
        task.meta.ended_at = utc_now()
        task.status = "completed"
        self._emit(record, terminal=True)

    def _finish_failed(self, record: TaskRecord, error: TaskError) -> None:
        task = record.task
        task.error = error.model_copy()
        task.meta.usage.frozen = 0
        task.meta.ended_at = utc_now()
        task.status = "failed"
        self._emit(record, terminal=True)

    def _store(self, record: TaskRecord, name: str, png: bytes) -> str:
        self._images.put(StoredImage(name=name, png=png, fault_overrides=record.fault_overrides))
        return f"{self._settings.base_url}/images/{name}.png"

    def _emit(self, record: TaskRecord, *, terminal: bool = False) -> None:
        if record.outbox is not None:
            record.outbox.publish(record, terminal=terminal)


def _piapi_target(record: TaskRecord) -> WebhookTarget | None:
    config = record.task.config.webhook_config
    if not config.endpoint:
        return None
    headers = {"x-webhook-secret": config.secret} if config.secret else {}
    return WebhookTarget(endpoint=config.endpoint, body=piapi_body, headers=headers)
