"""The midjourney-proxy face: its requests turned into the sandbox's Midjourney tasks, and
those tasks shown (and POSTed to ``notifyHook``) as the proxy shows them.

Both flavours run on the same tasks and images as the GoAPI face; only the API differs:
the original takes follow-ups through ``change {taskId, action, index}``, the fork through
``action {taskId, customId}`` with the custom id of one of the origin's ``buttons``
(``MJ::JOB::upsample::2::<hash>``; the hash is the origin's ``properties.messageHash``), lists
a finished grid's four images in ``imageUrls``, and cancels any unfinished task (it then
fails with ``failReason: "取消任务"``, as trueai-org's cancel does).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from imagetron_sandbox.goapi.errors import GoApiError
from imagetron_sandbox.goapi.models import (
    GO_ZERO_TIME,
    ImagineInput,
    ImagineRequest,
    ProcessMode,
    RerollInput,
    RerollRequest,
    TaskRequest,
    UpscaleInput,
    UpscaleRequest,
    VariationInput,
    VariationRequest,
)
from imagetron_sandbox.goapi.service import TaskService
from imagetron_sandbox.goapi.store import TaskRecord
from imagetron_sandbox.goapi.webhooks import WebhookTarget
from imagetron_sandbox.midjourney_proxy.models import (
    NOT_FOUND,
    SUCCESS,
    VALIDATION_ERROR,
    ActionBody,
    ChangeBody,
    Flavour,
    ImagineBody,
    SubmitResult,
    TaskJson,
)

CANCEL_REASON = "取消任务"  # what trueai-org's cancel writes into failReason
_SPEED = re.compile(r"(?<!\S)--(relax|fast|turbo)(?!\S)")
_CUSTOM_ID = re.compile(
    r"^MJ::JOB::(?P<kind>upsample|variation|reroll)::(?P<index>\d+)::(?P<hash>[^:]+)(?:::SOLO)?$"
)
_STATUSES = {
    "pending": "SUBMITTED",
    "staged": "SUBMITTED",
    "processing": "IN_PROGRESS",
    "running": "IN_PROGRESS",
    "completed": "SUCCESS",
    "failed": "FAILURE",
    "cancelled": "FAILURE",
}
_SUBMITTED = {Flavour.original: "成功", Flavour.fork: "提交成功"}

Submitted = tuple[int, SubmitResult]


class ProxyFace:
    def __init__(self, tasks: TaskService) -> None:
        self._tasks = tasks

    # --- submissions -------------------------------------------------------------------

    def imagine(self, body: ImagineBody, flavour: Flavour) -> Submitted:
        found = _SPEED.findall(body.prompt)
        mode: ProcessMode = found[-1] if found else "fast"
        return self._start(
            flavour,
            body.state,
            body.notifyHook,
            {"action": "IMAGINE"},
            lambda: ImagineRequest(
                model="midjourney",
                task_type="imagine",
                input=ImagineInput(prompt=body.prompt, process_mode=mode),
            ),
        )

    def change(self, body: ChangeBody) -> Submitted:
        origin = self._origin(body.taskId, Flavour.original)
        if not isinstance(origin, TaskRecord):
            return origin
        if body.action is None:
            return 200, _refusal("action参数错误")
        if body.action != "REROLL" and body.index not in (1, 2, 3, 4):
            return 200, _refusal("index参数错误")
        request = _follow_up(body.action, origin.task_id, body.index)
        return self._start(
            Flavour.original, body.state, body.notifyHook,
            {"action": body.action, "parentId": origin.task_id}, lambda: request,
        )  # fmt: skip

    def action(self, body: ActionBody) -> Submitted:
        origin = self._origin(body.taskId, Flavour.fork)
        if not isinstance(origin, TaskRecord):
            return origin
        found = _CUSTOM_ID.match(body.customId)
        if found is None or found["hash"] != origin.task_id:
            return 200, _refusal("未知的 Action 类型")
        kind, index = found["kind"], int(found["index"])
        if kind == "reroll":
            # trueai-org keeps the origin's action for a reroll of a grid.
            action, command = origin.annotations.get("action", "IMAGINE"), "REROLL"
        else:
            action = command = "UPSCALE" if kind == "upsample" else "VARIATION"
        request = _follow_up(command, origin.task_id, index)
        return self._start(
            Flavour.fork, body.state, body.notifyHook,
            {"action": action, "parentId": origin.task_id, "customId": body.customId},
            lambda: request,
        )  # fmt: skip

    # --- reading and cancelling ----------------------------------------------------------

    def fetch(self, task_id: str, flavour: Flavour) -> TaskJson | None:
        record = self._tasks.record(task_id)
        if record is None or record.annotations.get("flavour") != flavour:
            return None
        return task_json(record)

    def cancel(self, task_id: str) -> None:
        """The fork answers 200 whatever the task (unknown or finished: nothing happens)."""
        record = self._tasks.record(task_id)
        if record is not None and record.annotations.get("flavour") == Flavour.fork:
            self._tasks.stop(record)

    # --- helpers -------------------------------------------------------------------------

    def _origin(self, task_id: str, flavour: Flavour) -> TaskRecord | Submitted:
        """The completed task a follow-up acts on, or the proxy's refusal."""
        record = self._tasks.record(task_id)
        if record is None or record.annotations.get("flavour") != flavour:
            # The fork answers 404, the original 200; both with code 3.
            status = 404 if flavour is Flavour.fork else 200
            return status, SubmitResult(code=NOT_FOUND, description="关联任务不存在或已失效")
        if record.task.status != "completed":
            return 200, _refusal("关联任务状态错误")
        return record

    def _start(
        self,
        flavour: Flavour,
        state: str | None,
        notify_hook: str | None,
        annotations: dict[str, str],
        request: Callable[[], TaskRequest],
    ) -> Submitted:
        webhook = (
            WebhookTarget(endpoint=notify_hook, body=task_json, max_attempts=1)
            if notify_hook
            else None
        )

        def annotate(record: TaskRecord) -> None:
            record.annotations.update(
                annotations,
                flavour=flavour.value,
                state=state or "",
                notifyHook=notify_hook or "",
                submitTime=str(int(time.time() * 1000)),
            )

        try:
            record = self._tasks.start(request(), webhook, annotate)
        except (GoApiError, ValueError) as exc:
            return 200, _refusal(str(exc))
        properties = {"discordInstanceId": "1118138338562560102"}
        return 200, SubmitResult(
            code=SUCCESS, description=_SUBMITTED[flavour], result=record.task_id,
            properties=dict(properties),
        )  # fmt: skip


def _refusal(description: str) -> SubmitResult:
    return SubmitResult(code=VALIDATION_ERROR, description=description)


def _follow_up(command: str, origin_id: str, index: int | None) -> TaskRequest:
    match command:
        case "UPSCALE":
            return UpscaleRequest(
                model="midjourney", task_type="upscale",
                input=UpscaleInput.model_validate({"origin_task_id": origin_id, "index": index}),
            )  # fmt: skip
        case "VARIATION":
            return VariationRequest(
                model="midjourney", task_type="variation",
                input=VariationInput.model_validate({"origin_task_id": origin_id, "index": index}),
            )  # fmt: skip
    return RerollRequest(
        model="midjourney", task_type="reroll", input=RerollInput(origin_task_id=origin_id)
    )


def task_json(record: TaskRecord) -> TaskJson:
    """The task as the proxy answers ``fetch`` and POSTs it to ``notifyHook``."""
    task, notes = record.task, record.annotations
    fork = notes.get("flavour") == Flavour.fork
    output = task.output
    status = _STATUSES[task.status]
    image_url: str | None = None
    progress = ""
    if task.status in ("pending", "staged"):
        progress = "0%"
    elif status == "IN_PROGRESS":
        progress = f"{output.task_progress}%"
        previews = output.intermediate_image_urls or []
        image_url = previews[-1] if previews else None
    elif status == "SUCCESS":
        progress, image_url = "100%", output.image_url
    fail_reason = None
    if task.status == "cancelled":
        fail_reason = CANCEL_REASON
    elif task.status == "failed":
        fail_reason = task.error.message or "failed"
    properties: dict[str, Any] = {
        "notifyHook": notes.get("notifyHook") or None,
        "finalPrompt": record.prompt,
        "discordInstanceId": "1118138338562560102",
    }
    if status == "SUCCESS":
        properties["messageHash"] = task.task_id
    body: TaskJson = {
        "id": task.task_id,
        "properties": properties,
        "action": notes.get("action", "IMAGINE"),
        "status": status,
        "prompt": record.prompt,
        "promptEn": record.prompt,
        "description": f"/imagine {record.prompt}",
        "state": notes.get("state") or None,
        "submitTime": int(notes.get("submitTime", "0")),
        "startTime": _millis(task.meta.started_at),
        "finishTime": _millis(task.meta.ended_at),
        "progress": progress,
        "imageUrl": image_url,
        "failReason": fail_reason,
    }
    if fork:
        if "customId" in notes:
            properties["custom_id"] = notes["customId"]
        grid = status == "SUCCESS" and bool(record.split_names)
        body |= {
            "parentId": notes.get("parentId"),
            "buttons": _buttons(task.task_id, grid) if status == "SUCCESS" else [],
            "imageUrls": (
                [{"url": url, "thumbnail": url} for url in output.image_urls or []]
                if grid
                else None
            ),
            "isCompleted": status in ("SUCCESS", "FAILURE"),
        }
    return body


def _buttons(message_hash: str, grid: bool) -> list[dict[str, Any]]:
    def button(custom_id: str, label: str, emoji: str = "") -> dict[str, Any]:
        return {"customId": custom_id, "emoji": emoji, "label": label, "style": 2, "type": 2}

    if not grid:  # an upscale's buttons; the sandbox's follow-ups do not use them
        return [
            button(f"MJ::JOB::low_variation::1::{message_hash}::SOLO", "Vary (Subtle)", "🪄"),
            button(f"MJ::JOB::high_variation::1::{message_hash}::SOLO", "Vary (Strong)", "🪄"),
        ]
    return [
        *(button(f"MJ::JOB::upsample::{i}::{message_hash}", f"U{i}") for i in range(1, 5)),
        button(f"MJ::JOB::reroll::0::{message_hash}::SOLO", "", "🔄"),
        *(button(f"MJ::JOB::variation::{i}::{message_hash}", f"V{i}") for i in range(1, 5)),
    ]


def _millis(moment: str) -> int | None:
    if not moment or moment == GO_ZERO_TIME:
        return None
    return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp() * 1000)
