"""midjourney-proxy shapes: the requests both proxies take, the submission result, and the
task JSON they answer and POST to ``notifyHook``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

# novicezk `ReturnCode` (kept by trueai-org).
SUCCESS, NOT_FOUND, VALIDATION_ERROR = 1, 3, 4


class Flavour(StrEnum):
    """Which proxy the face imitates."""

    # novicezk v2.x: imagine + change, no buttons, no split images, no cancel.
    original = "original"
    # trueai-org v10+: imagine + action (buttons' custom ids), split images, cancel; no change.
    fork = "fork"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state: str | None = Field(default=None, max_length=255)
    notifyHook: str | None = Field(default=None, max_length=2000)


class ImagineBody(_Body):
    prompt: str = ""
    base64Array: list[str] = Field(default_factory=list)


class ChangeBody(_Body):
    taskId: str = ""
    action: Literal["UPSCALE", "VARIATION", "REROLL"] | None = None
    index: int | None = None


class ActionBody(_Body):
    taskId: str = ""
    customId: str = ""


class SubmitResult(BaseModel):
    """``{"code", "description", "result", "properties"}``."""

    code: int
    description: str
    result: str | None = None
    properties: dict[str, JsonValue] = Field(default_factory=dict)


TaskJson = dict[str, Any]
