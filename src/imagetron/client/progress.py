"""Following a task live from the event stream until its images are stored, shown as a
progress bar in a terminal and as plain lines otherwise (logs, pipes, tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from imagetron.client.api import Api, ClientError, Event, ExitCode

TASK_EVENTS = (
    "task.created",
    "task.submitted",
    "task.progress",
    "task.completed",
    "task.failed",
    "task.cancelled",
)
IMAGE_EVENTS = ("image.persisted", "image.failed")
ENDED = {"completed", "failed", "cancelled"}
STATUS_WORDS = {
    "pending": "queued",
    "submitted": "sent to the provider",
    "processing": "rendering",
    "completed": "rendered",
    "failed": "failed",
    "cancelled": "cancelled",
}


class Display(Protocol):
    def task(self, task: dict[str, Any]) -> None: ...
    def image(self, image: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


@dataclass
class Outcome:
    task: dict[str, Any]
    images: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.task["status"] == "completed" and all(
            image["is_persisted"] for image in self.images.values()
        )


def follow(
    api: Api,
    start: Callable[[], dict[str, Any]],
    display: Display,
    *,
    timeout: float,
) -> Outcome:
    """Connect to the event stream, then `start()` the task (so no event of it can be
    missed), and follow it until it has ended and each of its images is stored or failed."""
    outcome: Outcome | None = None
    expected: set[str] | None = None

    def begin() -> None:
        nonlocal outcome
        outcome = Outcome(task=start())
        display.task(outcome.task)

    types = ",".join(TASK_EVENTS + IMAGE_EVENTS)
    deadline = time.monotonic() + timeout
    try:
        # `begin` runs once the stream is connected, before any event arrives.
        for event in api.events(
            params={"types": types},
            on_connected=begin,
            on_reconnecting=lambda why: display.note(f"reconnecting to the event stream ({why})"),
            deadline=deadline,
        ):
            assert outcome is not None
            if _task_id(event) == outcome.task["id"]:
                _apply(outcome, event, display)
            if outcome.task["status"] in ENDED and expected is None:
                # Every image of the task exists once it has ended: list them once.
                listed = list(api.pages("/api/v1/images", task_id=outcome.task["id"]))
                expected = {image["id"] for image in listed}
                for image in listed:
                    # A failure counts once reported (image.failed): until then it is retried.
                    if image["is_persisted"] and image["id"] not in outcome.images:
                        outcome.images[image["id"]] = image
                        display.image(image)
            if expected is not None and expected <= set(outcome.images):
                return outcome
            if time.monotonic() > deadline:
                break
    finally:
        display.close()
    why = "the task is still going" if outcome else "no event stream, so it was not started"
    raise ClientError(f"Gave up after {timeout:g} s: {why}.", ExitCode.UNAVAILABLE)


def _task_id(event: Event) -> str | None:
    if "task" in event.data:
        return str(event.data["task"]["id"])
    if "image" in event.data:
        return str(event.data["image"]["task_id"])
    return None


def _apply(outcome: Outcome, event: Event, display: Display) -> None:
    if "task" in event.data:
        outcome.task = event.data["task"]
        display.task(outcome.task)
    elif "image" in event.data:
        image = event.data["image"]
        settled = image["is_persisted"] or event.type == "image.failed"
        if settled and image["id"] not in outcome.images:
            outcome.images[image["id"]] = image
            display.image(image)


def describe_image(image: dict[str, Any]) -> str:
    name = image["kind"] if image["kind"] == "grid" else f"{image['kind']} {image['index']}"
    if not image["is_persisted"]:
        return f"{name}: NOT stored: {image.get('error') or 'unknown error'}"
    size = f"{image['width']}x{image['height']}"
    return f"{name}: stored, {size}, {image['bytes']} bytes ({image['id']})"


class Lines:
    """One line per change: for pipes, logs and scripts."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._last: tuple[str, int] | None = None

    def task(self, task: dict[str, Any]) -> None:
        state = (task["status"], task["progress"])
        if state == self._last:
            return
        self._last = state
        words = STATUS_WORDS.get(task["status"], task["status"])
        line = f"{task['command']} {task['id']}: {words} {task['progress']}%"
        if task["status"] == "pending" and task.get("queue_position"):
            line += f" (#{task['queue_position']} in the queue)"
        if task["status"] == "failed" and task.get("error"):
            line += f": {task['error']}"
        self._console.print(line, highlight=False)

    def image(self, image: dict[str, Any]) -> None:
        self._console.print(describe_image(image), highlight=False)

    def note(self, text: str) -> None:
        self._console.print(text, highlight=False)

    def close(self) -> None:
        return None


class Bar:
    """A live progress bar in a terminal, with each stored image printed above it."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.fields[command]}[/bold]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[words]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._progress.start()
        self._bar: TaskID | None = None

    def task(self, task: dict[str, Any]) -> None:
        words = STATUS_WORDS.get(task["status"], task["status"])
        if task["status"] == "failed" and task.get("error"):
            words += f": {task['error']}"
        if self._bar is None:
            self._bar = self._progress.add_task("", total=100, command=task["command"], words=words)
        self._progress.update(self._bar, completed=task["progress"], words=words)

    def image(self, image: dict[str, Any]) -> None:
        self._progress.console.print(describe_image(image), highlight=False)

    def note(self, text: str) -> None:
        self._progress.console.print(f"[yellow]{text}[/yellow]")

    def close(self) -> None:
        self._progress.stop()


class Silent:
    """For `--json`: only the final document is printed."""

    def task(self, task: dict[str, Any]) -> None:
        return None

    def image(self, image: dict[str, Any]) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None
