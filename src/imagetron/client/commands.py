"""`imagetron login`, `prompts`, `chat`, `imagine` and its follow-ups, `download`, `events`:
the terminal's way to Imagetron, on the public API only. `--json` prints what the API
answered (for scripts); errors print the problem's `detail`; exit codes: `ExitCode`."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from imagetron.client import config
from imagetron.client.api import Api, ClientError, ExitCode
from imagetron.client.progress import Bar, Display, Lines, Outcome, Silent, describe_image, follow

P = ParamSpec("P")
R = TypeVar("R")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]
Wait = Annotated[bool, typer.Option("--wait", help="Follow it live until its images are stored.")]
Timeout = Annotated[
    float, typer.Option(help="With --wait: give up after this many seconds.", min=1)
]
Url = Annotated[
    str | None,
    typer.Option("--url", envvar="IMAGETRON_URL", help="Imagetron's URL (default: login's)."),
]
Key = Annotated[
    str | None,
    typer.Option("--key", envvar="IMAGETRON_API_KEY", help="An API key (default: login's)."),
]
ASPECT = r"^[1-9][0-9]?:[1-9][0-9]?$"


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """Client errors become their `detail` on stderr and their exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClientError as exc:
            err.print(f"[red]Error:[/red] {exc}")
            raise typer.Exit(int(exc.code)) from exc

    return run


@contextmanager
def connect(url: str | None, key: str | None) -> Iterator[Api]:
    """An API client with the given key and URL, the stored ones filling in what is not
    given. The stored key goes only to the URL it was stored for."""
    saved = config.load() if not (url and key) else None
    target = (url or (saved.url if saved else config.DEFAULT_URL)).rstrip("/")
    api_key = key or (saved.api_key if saved and saved.url == target else None)
    if not api_key:
        where = f" to {target}" if saved else ""
        raise ClientError(
            f"Not logged in{where}: run `imagetron login --url {target}` "
            "(or set IMAGETRON_API_KEY).",
            ExitCode.NOT_SIGNED_IN,
        )
    with Api(target, api_key) as api:
        yield api


def emit(data: Any) -> None:
    out.print_json(json.dumps(data))


# --- login ---------------------------------------------------------------------------


@handled
def login(
    url: Annotated[
        str, typer.Option(envvar="IMAGETRON_URL", help="Imagetron's URL.")
    ] = config.DEFAULT_URL,
    key: Annotated[
        str | None,
        typer.Option(
            envvar="IMAGETRON_API_KEY", help="The API key (asked for, unseen, when left out)."
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Check an API key against Imagetron and keep it in your config folder (mode 0600)."""
    api_key = key or typer.prompt("API key", hide_input=True)
    with Api(url, api_key) as api:
        me = api.get("/api/v1/me")
    path = config.save(config.Credentials(url=url.rstrip("/"), api_key=api_key))
    if as_json:
        emit(me)
    else:
        out.print(f"Logged in to {url} as {me['name']}. The key is kept in {path} (0600).")


def logout() -> None:
    """Forget the stored API key."""
    gone = config.forget()
    out.print("Logged out." if gone else "Not logged in.")


# --- prompts -------------------------------------------------------------------------

prompts = typer.Typer(help="Your prompts: list, add, write with the assistant, approve.")


def _prompt_line(prompt: dict[str, Any]) -> str:
    flags = f" [{len(prompt['findings'])} stock findings]" if prompt["findings"] else ""
    return f"{prompt['id']}  {prompt['status']:<8}  {prompt['title'] or '(untitled)'}{flags}"


@prompts.command("list")
@handled
def list_prompts(
    status: Annotated[str | None, typer.Option(help="new, approved, rejected or archived.")] = None,
    search: Annotated[str | None, typer.Option(help="Words in the text or title.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Your prompts, newest first."""
    with connect(url, key) as api:
        page = api.get("/api/v1/prompts", status=status, q=search, limit=limit)
    if as_json:
        emit(page)
        return
    if not page["items"]:
        out.print("No prompts. Add one: imagetron prompts add 'a pear on linen'")
        return
    table = Table("id", "status", "title", "prompt", box=None, pad_edge=False)
    for prompt in page["items"]:
        findings = f" ({len(prompt['findings'])} findings)" if prompt["findings"] else ""
        table.add_row(
            prompt["id"], prompt["status"], (prompt["title"] or "-") + findings, prompt["text"]
        )
    out.print(table)


@prompts.command("add")
@handled
def add_prompt(
    text: Annotated[str, typer.Argument(help="The prompt.")],
    title: Annotated[str | None, typer.Option(help="A stock-ready title.")] = None,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Add a prompt written by hand."""
    with connect(url, key) as api:
        prompt = api.post("/api/v1/prompts", {"text": text, "title": title})
    if as_json:
        emit(prompt)
        return
    out.print(f"Added {_prompt_line(prompt)}")
    for finding in prompt["findings"]:
        out.print(f"  ! {finding['message']}")


@prompts.command("write")
@handled
def write_prompts(
    subject: Annotated[str, typer.Argument(help="What the images show.")],
    count: Annotated[int, typer.Option(min=1, max=10)] = 4,
    style: Annotated[str | None, typer.Option(help="e.g. watercolor.")] = None,
    aspect_ratio: Annotated[str, typer.Option("--ar", help="e.g. 3:2.")] = "1:1",
    chat: Annotated[str | None, typer.Option(help="The subject chat it comes from.")] = None,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Have the language model write prompts with titles for a subject."""
    with connect(url, key) as api:
        written = api.post(
            "/api/v1/prompts/generate",
            {
                "subject": subject,
                "count": count,
                "style": style,
                "aspect_ratio": aspect_ratio,
                "chat_id": chat,
            },
        )
    if as_json:
        emit(written)
        return
    for prompt in written["prompts"]:
        out.print(_prompt_line(prompt))
        out.print(f"    {prompt['text']}")


@prompts.command("approve")
@handled
def approve_prompt(
    prompt_id: Annotated[str, typer.Argument(help="The prompt's id.")],
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Mark a prompt approved."""
    with connect(url, key) as api:
        prompt = api.put(f"/api/v1/prompts/{prompt_id}/status", {"status": "approved"})
    if as_json:
        emit(prompt)
    else:
        out.print(f"Approved {_prompt_line(prompt)}")


# --- chat ----------------------------------------------------------------------------


@handled
def chat(
    text: Annotated[str, typer.Argument(help="A brief, or with --chat how to refine.")],
    chat_id: Annotated[
        str | None, typer.Option("--chat", help="Continue this subject chat.")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, max=20, help="How many subjects.")] = None,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Ask the assistant for image subjects for a brief (or refine a chat's)."""
    with connect(url, key) as api:
        if chat_id:
            answer = api.post(f"/api/v1/chats/{chat_id}/messages", {"text": text, "count": count})
        else:
            answer = api.post("/api/v1/chats", {"brief": text, "count": count})
    if as_json:
        emit(answer)
        return
    last = answer["messages"][-1]
    out.print(last["content"])
    for number, subject in enumerate(last["subjects"], 1):
        flags = f"  [{len(subject['findings'])} stock findings]" if subject["findings"] else ""
        out.print(f"{number:>2}. {subject['text']}{flags}")
    out.print(
        f"\nChat {answer['id']}. Refine: imagetron chat --chat {answer['id']} 'only pears'\n"
        f"Prompts: imagetron prompts write '<subject>' --chat {answer['id']}"
    )


# --- tasks -----------------------------------------------------------------------------


def _display(as_json: bool) -> Display:
    if as_json:
        return Silent()
    return Bar(err) if err.is_terminal else Lines(out)


def _run_task(
    api: Api, start: Callable[[], dict[str, Any]], *, wait: bool, as_json: bool, timeout: float
) -> None:
    if not wait:
        task = start()
        if as_json:
            emit(task)
        else:
            out.print(f"{task['command']} {task['id']}: {task['status']}")
            out.print(f"Follow it: imagetron events --task {task['id']}")
        return
    outcome = follow(api, start, _display(as_json), timeout=timeout)
    if as_json:
        emit({"task": outcome.task, "images": list(outcome.images.values())})
    else:
        _summary(outcome)
    if not outcome.succeeded:
        raise typer.Exit(int(ExitCode.NOT_DONE))


def _summary(outcome: Outcome) -> None:
    task = outcome.task
    if task["status"] != "completed":
        reason = f": {task['error']}" if task.get("error") else ""
        out.print(f"The {task['command']} ended {task['status']}{reason}.")
        return
    stored = sum(1 for image in outcome.images.values() if image["is_persisted"])
    total = len(outcome.images)
    if stored == total:
        out.print(f"Done: {stored} of {total} images stored.")
    else:
        # Rendered, but not (all) kept: not "done", whatever the task's own status says.
        out.print(f"Not done: {stored} of {total} images stored (why, above).")
    actions = ", ".join(task.get("actions") or []) or "none"
    out.print(f"Follow-ups possible: {actions}.")
    if stored:
        out.print(f"Download: imagetron download {task['id']}")


@handled
def imagine(
    text: Annotated[
        str | None, typer.Argument(help="What to render (a new prompt is made of it).")
    ] = None,
    prompt_id: Annotated[
        str | None, typer.Option("--prompt", help="Render this existing prompt instead.")
    ] = None,
    aspect_ratio: Annotated[str, typer.Option("--ar", help="Aspect ratio, e.g. 3:2.")] = "1:1",
    mode: Annotated[str, typer.Option(help="relax, fast or turbo.")] = "fast",
    wait: Wait = False,
    timeout: Timeout = 600.0,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Render a prompt as a grid of four versions."""
    if (text is None) == (prompt_id is None):
        raise typer.BadParameter("Give the text to render or --prompt ID (one of them).")
    with connect(url, key) as api:

        def start() -> dict[str, Any]:
            target = prompt_id or api.post("/api/v1/prompts", {"text": text})["id"]
            task: dict[str, Any] = api.post(
                f"/api/v1/prompts/{target}/imagine",
                {"aspect_ratio": aspect_ratio, "process_mode": mode},
            )
            return task

        _run_task(api, start, wait=wait, as_json=as_json, timeout=timeout)


Task = Annotated[str, typer.Argument(help="The task's id.")]
Index = Annotated[int, typer.Argument(min=1, max=4, help="The version, 1-4.")]


@handled
def upscale(
    task_id: Task,
    index: Index,
    wait: Wait = False,
    timeout: Timeout = 600.0,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Upscale one version of a completed grid."""
    _follow_up(task_id, "upscale", {"index": index}, url, key, wait, timeout, as_json)


@handled
def vary(
    task_id: Task,
    index: Index,
    subtle: Annotated[bool, typer.Option("--subtle", help="Stay close to the version.")] = False,
    wait: Wait = False,
    timeout: Timeout = 600.0,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """A new grid of variations of one version."""
    body = {"index": index, "strength": "subtle" if subtle else "strong"}
    _follow_up(task_id, "variation", body, url, key, wait, timeout, as_json)


@handled
def reroll(
    task_id: Task,
    wait: Wait = False,
    timeout: Timeout = 600.0,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Render a grid's prompt again."""
    _follow_up(task_id, "reroll", None, url, key, wait, timeout, as_json)


def _follow_up(
    task_id: str,
    action: str,
    body: dict[str, Any] | None,
    url: str | None,
    key: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    with connect(url, key) as api:
        path = f"/api/v1/tasks/{task_id}/{action}"
        _run_task(
            api, lambda: dict(api.post(path, body)), wait=wait, as_json=as_json, timeout=timeout
        )


@handled
def cancel(task_id: Task, url: Url = None, key: Key = None, as_json: Json = False) -> None:
    """Cancel a task that has not finished."""
    with connect(url, key) as api:
        task = api.post(f"/api/v1/tasks/{task_id}/cancel")
    if as_json:
        emit(task)
    else:
        out.print(f"{task['command']} {task['id']}: {task['status']}")


# --- download ------------------------------------------------------------------------


@handled
def download(
    task_id: Task,
    to: Annotated[Path, typer.Option(help="Folder to write the files to.")] = Path("."),
    kind: Annotated[str | None, typer.Option(help="Only grid, version or upscale.")] = None,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Download a task's stored images (checked against their SHA-256)."""
    written: list[dict[str, Any]] = []
    missing = 0
    with connect(url, key) as api:
        api.get(f"/api/v1/tasks/{task_id}")  # an unknown task is an error, not "no images"
        to.mkdir(parents=True, exist_ok=True)
        for image in api.pages("/api/v1/images", task_id=task_id, kind=kind):
            if not image["is_persisted"]:
                missing += 1
                err.print(describe_image(image))
                continue
            extension = (image["content_type"] or "image/png").split("/")[-1].replace("jpeg", "jpg")
            name = f"{task_id[:8]}-{image['kind']}-{image['index']}.{extension}"
            written.append({"path": str(_fetch(api, image, to / name)), "image": image})
    if as_json:
        emit(written)
    else:
        for item in written:
            out.print(f"{item['path']}  ({describe_image(item['image'])})")
        if not written and not missing:
            out.print("The task has no images (yet).")
    if missing:
        raise typer.Exit(int(ExitCode.NOT_DONE))


def _fetch(api: Api, image: dict[str, Any], path: Path) -> Path:
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as file:

        def write(chunk: bytes) -> None:
            digest.update(chunk)
            file.write(chunk)

        api.download(f"/api/v1/images/{image['id']}/content", write)
    if image.get("sha256") and digest.hexdigest() != image["sha256"]:
        partial.unlink()
        raise ClientError(
            f"{path.name} arrived damaged (its SHA-256 differs); try again.", ExitCode.UNAVAILABLE
        )
    os.replace(partial, path)
    return path


# --- events --------------------------------------------------------------------------


@handled
def events(
    task: Annotated[str | None, typer.Option(help="Only this task's events.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Only this prompt's events.")] = None,
    types: Annotated[
        str | None, typer.Option(help="Only these types, e.g. task.completed,image.persisted.")
    ] = None,
    after: Annotated[
        int | None, typer.Option(help="Replay from after this event id.", min=0)
    ] = None,
    url: Url = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Follow your events live (Ctrl-C stops); reconnects by itself and misses nothing."""
    wanted = (("task_id", task), ("prompt_id", prompt), ("types", types))
    params = {name: value for name, value in wanted if value}
    with connect(url, key) as api:
        try:
            for event in api.events(
                params=params,
                after=after,
                on_reconnecting=lambda why: err.print(f"reconnecting ({why})"),
            ):
                if as_json:
                    print(json.dumps({"id": event.id, "type": event.type, "data": event.data}))
                else:
                    out.print(f"{event.id:>8}  {event.type:<16} {_event_summary(event.data)}")
                sys.stdout.flush()
        except KeyboardInterrupt:
            return


def _event_summary(data: dict[str, Any]) -> str:
    if "task" in data:
        task = data["task"]
        return f"{task['command']} {task['id']} {task['status']} {task['progress']}%"
    if "image" in data:
        return describe_image(data["image"])
    for name in ("prompt", "chat", "publication"):
        if name in data and isinstance(data[name], dict):
            item = data[name]
            label = item.get("title") or item.get("status") or ""
            return f"{name} {item.get('id')} {label}".strip()
    return ""


def register(app: typer.Typer) -> None:
    """Add the client commands to the `imagetron` command."""
    app.command(rich_help_panel="Client")(login)
    app.command(rich_help_panel="Client")(logout)
    app.add_typer(prompts, name="prompts", rich_help_panel="Client")
    app.command(rich_help_panel="Client")(chat)
    app.command(rich_help_panel="Client")(imagine)
    app.command(rich_help_panel="Client")(upscale)
    app.command(rich_help_panel="Client")(vary)
    app.command(rich_help_panel="Client")(reroll)
    app.command(rich_help_panel="Client")(cancel)
    app.command(rich_help_panel="Client")(download)
    app.command(rich_help_panel="Client")(events)
