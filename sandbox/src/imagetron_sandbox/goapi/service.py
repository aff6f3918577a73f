"""Submitting, reading and cancelling Midjourney tasks (the logic behind the routes)."""

from __future__ import annotations

import uuid

from imagetron_sandbox.faults.store import FaultStore
from imagetron_sandbox.faults.tokens import FaultTokenError, Overrides
from imagetron_sandbox.goapi.errors import GoApiError
from imagetron_sandbox.goapi.lifecycle import TaskLifecycle, utc_now
from imagetron_sandbox.goapi.models import (
    ImagineRequest,
    ProcessMode,
    RerollRequest,
    Task,
    TaskConfig,
    TaskMeta,
    TaskRequest,
    TaskUsage,
    UpscaleRequest,
    VariationRequest,
)
from imagetron_sandbox.goapi.plan import GridPlan, RenderPlan, UpscalePlan, split_name
from imagetron_sandbox.goapi.prompt import MidjourneyPrompt, parse_midjourney_prompt
from imagetron_sandbox.goapi.store import TaskRecord, TaskStore
from imagetron_sandbox.images.geometry import AspectRatio, scaled_to_long_side
from imagetron_sandbox.images.render import Artwork
from imagetron_sandbox.images.store import ImageStore
from imagetron_sandbox.settings import SandboxSettings

_MODE_FACTOR: dict[ProcessMode, int] = {"relax": 1, "fast": 2, "turbo": 4}
_VARIATION_STRENGTH = {"high_variation": 0.6, "low_variation": 0.35}
_GRID_VARIATION_STRENGTH = 0.55


class TaskService:
    def __init__(
        self,
        settings: SandboxSettings,
        faults: FaultStore,
        images: ImageStore,
        lifecycle: TaskLifecycle,
    ) -> None:
        self._settings = settings
        self._faults = faults
        self._images = images
        self._lifecycle = lifecycle
        self._tasks = TaskStore()

    def submit(self, request: TaskRequest) -> Task:
        task_id = str(uuid.uuid4())
        match request:
            case ImagineRequest():
                record = self._imagine(task_id, request)
            case UpscaleRequest():
                record = self._upscale(task_id, request)
            case VariationRequest():
                record = self._variation(task_id, request)
            case RerollRequest():
                record = self._reroll(task_id, request)
        self._tasks.add(record)
        self._lifecycle.start(record)
        return record.task.model_copy(deep=True)

    def get(self, task_id: str) -> Task:
        return self._record(task_id).task.model_copy(deep=True)

    def cancel(self, task_id: str) -> Task:
        record = self._record(task_id)
        if record.task.status != "pending":
            raise GoApiError(
                400, f"task {task_id} is {record.task.status}; only pending tasks can be cancelled"
            )
        self._lifecycle.cancel(record)
        return record.task.model_copy(deep=True)

    # --- building records -----------------------------------------------------------

    def _imagine(self, task_id: str, request: ImagineRequest) -> TaskRecord:
        data = request.input
        prompt = _parse(data.prompt)
        aspect = _aspect(data.aspect_ratio or prompt.aspect_ratio or "1:1")
        art = self._artwork(prompt, task_id)
        plan = GridPlan(art, aspect.size(self._settings.grid_long_side))
        echo = {**data.model_dump(mode="json"), "aspect_ratio": str(aspect)}
        return self._record_for(
            task_id, request, echo, data.prompt, prompt, aspect, data.process_mode, plan
        )

    def _upscale(self, task_id: str, request: UpscaleRequest) -> TaskRecord:
        origin = self._grid_origin(request.input.origin_task_id, "upscale")
        index = int(request.input.index)
        source = self._origin_png(origin, split_name(origin.task_id, index))
        assert isinstance(origin.plan, GridPlan)
        split_size = (origin.plan.size[0] // 2, origin.plan.size[1] // 2)
        art = origin.plan.art
        plan = UpscalePlan(
            art=Artwork(art.prompt, task_id, art.version),
            source=source,
            size=scaled_to_long_side(split_size, self._settings.upscale_long_side),
            label=f"U{index}",
        )
        return self._follow_up(task_id, request, origin, origin.prompt, origin.aspect, plan)

    def _variation(self, task_id: str, request: VariationRequest) -> TaskRecord:
        data = request.input
        if data.index in _VARIATION_STRENGTH:
            origin = self._origin(data.origin_task_id)
            if origin.upscale_name is None:
                raise GoApiError(400, f"{data.index} needs an upscaled origin task")
            bases = (self._origin_png(origin, origin.upscale_name),)
            strength = _VARIATION_STRENGTH[data.index]
        else:
            origin = self._grid_origin(data.origin_task_id, "variation")
            bases = (self._origin_png(origin, split_name(origin.task_id, int(data.index))),)
            strength = _GRID_VARIATION_STRENGTH
        raw = data.prompt or origin.prompt
        prompt = _parse(raw)
        aspect = _aspect(data.aspect_ratio) if data.aspect_ratio else origin.aspect
        plan = GridPlan(
            self._artwork(prompt, task_id),
            aspect.size(self._settings.grid_long_side),
            bases=bases,
            variation_strength=strength,
        )
        return self._follow_up(
            task_id, request, origin, raw, aspect, plan, own_prompt=data.prompt is not None
        )

    def _reroll(self, task_id: str, request: RerollRequest) -> TaskRecord:
        data = request.input
        origin = self._grid_origin(data.origin_task_id, "reroll")
        raw = data.prompt or origin.prompt
        aspect = _aspect(data.aspect_ratio) if data.aspect_ratio else origin.aspect
        plan = GridPlan(
            self._artwork(_parse(raw), task_id), aspect.size(self._settings.grid_long_side)
        )
        return self._follow_up(
            task_id, request, origin, raw, aspect, plan, own_prompt=data.prompt is not None
        )

    def _follow_up(
        self,
        task_id: str,
        request: UpscaleRequest | VariationRequest | RerollRequest,
        origin: TaskRecord,
        raw_prompt: str,
        aspect: AspectRatio,
        plan: RenderPlan,
        *,
        own_prompt: bool = False,
    ) -> TaskRecord:
        """Follow-up tasks inherit the origin's prompt, its tokens and its process mode."""
        echo = request.input.model_dump(mode="json", exclude_none=True)
        prompt = _parse(raw_prompt)
        return self._record_for(
            task_id,
            request,
            echo,
            raw_prompt,
            prompt,
            aspect,
            origin.process_mode,
            plan,
            overrides=prompt.sandbox.overrides() if own_prompt else origin.fault_overrides,
        )

    def _record_for(
        self,
        task_id: str,
        request: TaskRequest,
        echo: dict[str, object],
        raw_prompt: str,
        prompt: MidjourneyPrompt,
        aspect: AspectRatio,
        process_mode: ProcessMode,
        plan: RenderPlan,
        *,
        overrides: Overrides | None = None,
    ) -> TaskRecord:
        fault_overrides = prompt.sandbox.overrides() if overrides is None else overrides
        price = (2 if request.task_type == "upscale" else 8) * _MODE_FACTOR[process_mode]
        task = Task.model_validate(
            {
                "task_id": task_id,
                "task_type": request.task_type,
                "config": TaskConfig(
                    service_mode="public",
                    webhook_config=request.config.webhook_config.model_copy(),
                ),
                "input": echo,
                "meta": TaskMeta(
                    created_at=utc_now(),
                    usage=TaskUsage(frozen=price),
                    model_version=prompt.version or self._settings.midjourney_version,
                    process_mode=process_mode,
                ),
            }
        )
        return TaskRecord(
            task=task,
            prompt=raw_prompt,
            aspect=aspect,
            process_mode=process_mode,
            plan=plan,
            knobs=self._faults.knobs.overridden(fault_overrides),
            fault_overrides=fault_overrides,
        )

    def _artwork(self, prompt: MidjourneyPrompt, task_id: str) -> Artwork:
        version = prompt.version or self._settings.midjourney_version
        label = version if version.startswith("niji") else f"v{version}"
        return Artwork(prompt=prompt.text, seed=task_id, version=label)

    # --- origins --------------------------------------------------------------------

    def _record(self, task_id: str) -> TaskRecord:
        record = self._tasks.get(task_id)
        if record is None:
            raise GoApiError(404, f"task not found: {task_id}")
        return record

    def _origin(self, task_id: str) -> TaskRecord:
        record = self._tasks.get(task_id)
        if record is None:
            raise GoApiError(400, f"origin task not found: {task_id}")
        if record.task.status != "completed":
            raise GoApiError(400, f"origin task {task_id} is {record.task.status}, not completed")
        return record

    def _grid_origin(self, task_id: str, action: str) -> TaskRecord:
        record = self._origin(task_id)
        if not record.split_names:
            raise GoApiError(
                400, f"cannot {action} task {task_id}: it is a {record.task.task_type} task"
            )
        return record

    def _origin_png(self, origin: TaskRecord, name: str) -> bytes:
        image = self._images.get(name)
        if image is None:
            raise GoApiError(400, f"images of origin task {origin.task_id} have expired")
        return image.png


def _parse(prompt: str) -> MidjourneyPrompt:
    try:
        return parse_midjourney_prompt(prompt)
    except FaultTokenError as exc:
        raise GoApiError(400, str(exc)) from exc


def _aspect(text: str) -> AspectRatio:
    try:
        return AspectRatio.parse(text)
    except ValueError as exc:
        raise GoApiError(400, f"invalid aspect_ratio: {exc}") from exc
