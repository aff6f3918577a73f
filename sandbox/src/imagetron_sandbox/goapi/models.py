"""GoAPI/PiAPI unified task API shapes: the requests we accept and the task object we return."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
)

from imagetron_sandbox.images.geometry import AspectRatio

# PiAPI's own client declares these seven (`running` is a synonym of `processing` that the
# sandbox never uses, nor `staged`); a cancelled task ends `cancelled`.
TaskStatus = Literal[
    "pending", "staged", "processing", "running", "completed", "failed", "cancelled"
]
TaskType = Literal["imagine", "upscale", "variation", "reroll"]
ProcessMode = Literal["relax", "fast", "turbo"]
GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # what a Go backend prints for a time never set


def _stringify(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


GridIndex = Annotated[Literal["1", "2", "3", "4"], BeforeValidator(_stringify)]
VariationIndex = Annotated[
    Literal["1", "2", "3", "4", "high_variation", "low_variation"], BeforeValidator(_stringify)
]


# --- requests -------------------------------------------------------------------------


class WebhookConfig(BaseModel):
    endpoint: str = ""
    secret: str = ""

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, endpoint: str) -> str:
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ValueError("webhook endpoint must be an http(s) URL")
        return endpoint


class TaskConfig(BaseModel):
    service_mode: Literal["", "public", "private"] = ""
    webhook_config: WebhookConfig = Field(default_factory=WebhookConfig)


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _check_ratio(value: str | None) -> str | None:
    if value:
        AspectRatio.parse(value)
    return value or None


RatioText = Annotated[str | None, AfterValidator(_check_ratio)]


class ImagineInput(_Input):
    prompt: str = Field(min_length=1, max_length=8192)
    aspect_ratio: RatioText = None
    process_mode: ProcessMode = "fast"
    skip_prompt_check: bool = False
    bot_id: int = 0

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must not be blank")
        return prompt


class UpscaleInput(_Input):
    origin_task_id: str = Field(min_length=1)
    index: GridIndex


class VariationInput(_Input):
    origin_task_id: str = Field(min_length=1)
    index: VariationIndex
    prompt: str | None = Field(default=None, max_length=8192)
    aspect_ratio: RatioText = None
    skip_prompt_check: bool = False


class RerollInput(_Input):
    origin_task_id: str = Field(min_length=1)
    prompt: str | None = Field(default=None, max_length=8192)
    aspect_ratio: RatioText = None
    skip_prompt_check: bool = False


class _Request(BaseModel):
    model: Literal["midjourney"]
    config: TaskConfig = Field(default_factory=TaskConfig)


class ImagineRequest(_Request):
    task_type: Literal["imagine"]
    input: ImagineInput


class UpscaleRequest(_Request):
    task_type: Literal["upscale"]
    input: UpscaleInput


class VariationRequest(_Request):
    task_type: Literal["variation"]
    input: VariationInput


class RerollRequest(_Request):
    task_type: Literal["reroll"]
    input: RerollInput


TaskRequest = Annotated[
    ImagineRequest | UpscaleRequest | VariationRequest | RerollRequest,
    Field(discriminator="task_type"),
]


# --- the task object ------------------------------------------------------------------


class TaskOutput(BaseModel):
    image_url: str = ""
    image_urls: list[str] | None = None
    temporary_image_urls: list[str] | None = None
    discord_image_url: str = ""
    actions: list[str] = Field(default_factory=list)
    progress: int = 0
    task_progress: int = 0
    intermediate_image_urls: list[str] | None = None


class TaskUsage(BaseModel):
    type: str = "mj"
    frozen: int = 0
    consume: int = 0


class TaskMeta(BaseModel):
    created_at: str
    started_at: str = GO_ZERO_TIME
    ended_at: str = GO_ZERO_TIME
    usage: TaskUsage = Field(default_factory=TaskUsage)
    is_using_private_pool: bool = False
    model_version: str = "unknown"
    process_mode: ProcessMode = "fast"
    failover_triggered: bool = False


class TaskError(BaseModel):
    code: int = 0
    raw_message: str = ""
    message: str = ""
    detail: JsonValue = None


class Task(BaseModel):
    task_id: str
    model: Literal["midjourney"] = "midjourney"
    task_type: TaskType
    status: TaskStatus = "pending"
    config: TaskConfig
    input: dict[str, JsonValue]
    output: TaskOutput = Field(default_factory=TaskOutput)
    meta: TaskMeta
    detail: JsonValue = None
    logs: list[JsonValue] = Field(default_factory=list)
    error: TaskError = Field(default_factory=TaskError)


class TaskEnvelope(BaseModel):
    """``{"code": 200, "data": <task>, "message": "success"}``."""

    code: int = 200
    data: Task
    message: str = "success"


class CancelAnswer(BaseModel):
    """What ``DELETE /api/v1/task/{id}`` answers: no ``data``, only a message."""

    code: int = 200
    message: str


class ErrorEnvelope(BaseModel):
    code: int
    data: JsonValue = None
    message: str
