"""What a task will draw, decided at submission and executed (in a thread) while processing."""

from __future__ import annotations

from dataclasses import dataclass

from imagetron_sandbox.images.render import Artwork, GridImages, render_grid, render_upscale

GRID_ACTIONS = (
    "reroll",
    "upscale1",
    "upscale2",
    "upscale3",
    "upscale4",
    "variation1",
    "variation2",
    "variation3",
    "variation4",
)
UPSCALE_ACTIONS = (
    "high_variation",
    "low_variation",
    "outpaint_1.5x",
    "outpaint_2x",
    "outpaint_custom",
    "pan_down",
    "pan_left",
    "pan_right",
    "pan_up",
    "upscale_creative",
    "upscale_subtle",
)


@dataclass(frozen=True, slots=True)
class GridPlan:
    """Four tiles in a 2x2 grid; with ``bases`` they are variations of those images."""

    art: Artwork
    size: tuple[int, int]
    bases: tuple[bytes, ...] = ()
    variation_strength: float = 0.5

    def render(self) -> GridImages:
        return render_grid(
            self.art, self.size, bases=self.bases, variation_strength=self.variation_strength
        )


@dataclass(frozen=True, slots=True)
class UpscalePlan:
    """One split of an earlier grid, enlarged."""

    art: Artwork
    source: bytes
    size: tuple[int, int]
    label: str

    def render(self) -> bytes:
        return render_upscale(self.source, self.art, self.size, self.label)


RenderPlan = GridPlan | UpscalePlan


def render_plan(plan: RenderPlan) -> GridImages | bytes:
    """Draw what ``plan`` describes (CPU-bound: run it in a worker thread)."""
    return plan.render()


def grid_name(task_id: str) -> str:
    return f"{task_id}-grid"


def split_name(task_id: str, index: int) -> str:
    return f"{task_id}-{index}"


def upscale_name(task_id: str) -> str:
    return f"{task_id}-upscaled"


def preview_name(task_id: str, progress: int) -> str:
    return f"{task_id}-progress-{progress}"
