"""Turning a validated request into a task record: what to draw, which faults, what to echo."""

from __future__ import annotations

from dataclasses import dataclass

from imagetron_sandbox.faults.store import FaultStore
from imagetron_sandbox.faults.tokens import FaultTokenError, Overrides
from imagetron_sandbox.goapi.errors import GoApiError
from imagetron_sandbox.goapi.lifecycle import utc_now
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
_UPSCALED_VARIATION_STRENGTH = {"high_variation": 0.6, "low_variation": 0.35}
_GRID_VARIATION_STRENGTH = 0.55


@dataclass(frozen=True, slots=True)
class _Draft:
    """Everything a new task is made of, before it gets its task object."""

    request: TaskRequest
    echo: dict[str, object]
    raw_prompt: str
    prompt: MidjourneyPrompt
    aspect: AspectRatio
    process_mode: ProcessMode
    plan: RenderPlan
    fault_overrides: Overrides


class TaskFactory:
    def __init__(
        self,
        settings: SandboxSettings,
        faults: FaultStore,
        images: ImageStore,
        tasks: TaskStore,
    ) -> None:
        self._settings = settings
        self._faults = faults
        self._images = images
        self._tasks = tasks

    def build(self, task_id: str, request: TaskRequest) -> TaskRecord:
        match request:
            case ImagineRequest():
                draft = self._imagine(task_id, request)
            case UpscaleRequest():
                draft = self._upscale(task_id, request)
            case VariationRequest():
                draft = self._variation(task_id, request)
            case RerollRequest():
                draft = self._reroll(task_id, request)
        return self._record(task_id, draft)

    # --- one builder per task type ----------------------------------------------------

    def _imagine(self, task_id: str, request: ImagineRequest) -> _Draft:
        data = request.input
        prompt = _parse(data.prompt)
        aspect = _aspect(data.aspect_ratio or prompt.aspect_ratio or "1:1")
        return _Draft(
            request=request,
            echo={**data.model_dump(mode="json"), "aspect_ratio": str(aspect)},
            raw_prompt=data.prompt,
            prompt=prompt,
            aspect=aspect,
            process_mode=data.process_mode,
            plan=GridPlan(self._artwork(prompt, task_id), self._grid_size(aspect)),
            fault_overrides=prompt.sandbox.overrides(),
        )

    def _upscale(self, task_id: str, request: UpscaleRequest) -> _Draft:
        origin = self._grid_origin(request.input.origin_task_id, "upscale")
        assert isinstance(origin.plan, GridPlan)
        index = int(request.input.index)
        split_size = (origin.plan.size[0] // 2, origin.plan.size[1] // 2)
        art = origin.plan.art
        plan = UpscalePlan(
            art=Artwork(art.prompt, task_id, art.version),
            source=self._png(origin, split_name(origin.task_id, index)),
            size=scaled_to_long_side(split_size, self._settings.upscale_long_side),
            label=f"U{index}",
        )
        return self._follow_up(request, origin, None, origin.aspect, plan)

    def _variation(self, task_id: str, request: VariationRequest) -> _Draft:
        data = request.input
        if data.index in _UPSCALED_VARIATION_STRENGTH:
            origin = self._origin(data.origin_task_id)
            if origin.upscale_name is None:
                raise GoApiError(400, f"{data.index} needs an upscaled origin task")
            base = self._png(origin, origin.upscale_name)
            strength = _UPSCALED_VARIATION_STRENGTH[data.index]
        else:
            origin = self._grid_origin(data.origin_task_id, "variation")
            base = self._png(origin, split_name(origin.task_id, int(data.index)))
            strength = _GRID_VARIATION_STRENGTH
        aspect = _aspect(data.aspect_ratio) if data.aspect_ratio else origin.aspect
        plan = GridPlan(
            self._artwork(_parse(data.prompt or origin.prompt), task_id),
            self._grid_size(aspect),
            bases=(base,),
            variation_strength=strength,
        )
        return self._follow_up(request, origin, data.prompt, aspect, plan)

    def _reroll(self, task_id: str, request: RerollRequest) -> _Draft:
        data = request.input
        origin = self._grid_origin(data.origin_task_id, "reroll")
        aspect = _aspect(data.aspect_ratio) if data.aspect_ratio else origin.aspect
        art = self._artwork(_parse(data.prompt or origin.prompt), task_id)
        return self._follow_up(
            request, origin, data.prompt, aspect, GridPlan(art, self._grid_size(aspect))
        )

    def _follow_up(
        self,
        request: UpscaleRequest | VariationRequest | RerollRequest,
        origin: TaskRecord,
        own_prompt: str | None,
        aspect: AspectRatio,
        plan: RenderPlan,
    ) -> _Draft:
        """Follow-ups keep the origin's prompt (and its tokens) unless given their own."""
        raw_prompt = own_prompt or origin.prompt
        prompt = _parse(raw_prompt)
        return _Draft(
            request=request,
            echo=request.input.model_dump(mode="json", exclude_none=True),
            raw_prompt=raw_prompt,
            prompt=prompt,
            aspect=aspect,
            process_mode=origin.process_mode,
            plan=plan,
            fault_overrides=prompt.sandbox.overrides() if own_prompt else origin.fault_overrides,
        )

    # --- assembling -------------------------------------------------------------------

    def _record(self, task_id: str, draft: _Draft) -> TaskRecord:
        request = draft.request
        price = (2 if request.task_type == "upscale" else 8) * _MODE_FACTOR[draft.process_mode]
        task = Task.model_validate(
            {
                "task_id": task_id,
                "task_type": request.task_type,
                "config": TaskConfig(
                    service_mode="public",
                    webhook_config=request.config.webhook_config.model_copy(),
                ),
                "input": draft.echo,
                "meta": TaskMeta(
                    created_at=utc_now(),
                    usage=TaskUsage(frozen=price),
                    model_version=draft.prompt.version or self._settings.midjourney_version,
                    process_mode=draft.process_mode,
                ),
            }
        )
        return TaskRecord(
            task=task,
            prompt=draft.raw_prompt,
            aspect=draft.aspect,
            process_mode=draft.process_mode,
            plan=draft.plan,
            knobs=self._faults.knobs.overridden(draft.fault_overrides),
            fault_overrides=draft.fault_overrides,
        )

    def _artwork(self, prompt: MidjourneyPrompt, task_id: str) -> Artwork:
        version = prompt.version or self._settings.midjourney_version
        label = version if version.startswith("niji") else f"v{version}"
        return Artwork(prompt=prompt.text, seed=task_id, version=label)

    def _grid_size(self, aspect: AspectRatio) -> tuple[int, int]:
        return aspect.size(self._settings.grid_long_side)

    # --- origins ----------------------------------------------------------------------

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

    def _png(self, origin: TaskRecord, name: str) -> bytes:
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
