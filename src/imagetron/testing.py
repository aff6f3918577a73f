"""Test helpers shared by the packages' integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from fastapi import FastAPI
from httpx_sse import aconnect_sse

from imagetron.servers import LOCALHOST, free_port

EVENT_TIMEOUT = 60.0
Event = tuple[int, str, dict[str, Any]]

if TYPE_CHECKING:
    import pytest

    from imagetron.stack import EmbeddedStack
    from imagetron_gateway.settings import GatewaySettings


def kept_logs(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """Where the logs of `server_root(tmp_path_factory, name)` are once it has ended."""
    return tmp_path_factory.getbasetemp() / name


@contextlib.contextmanager
def server_root(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A directory for servers' data and logs, linked from pytest's temporary directory as
    `name` while it is used; at the end it is removed and its logs (every `*.log`, at the
    same paths) are kept in pytest's temporary directory under that name (`kept_logs`),
    so that a failure can point at them.

    Not inside that directory: PostgreSQL runs as an unprivileged user that must traverse to
    its data, and every pytest session that starts takes the group and other bits off
    `pytest-of-<user>`, which failed the start of a concurrent session's PostgreSQL."""
    root = Path(tempfile.mkdtemp(prefix=f"imagetron-{name}-"))
    kept = kept_logs(tmp_path_factory, name)
    kept.symlink_to(root, target_is_directory=True)
    try:
        yield root
    finally:
        kept.unlink()
        for log in root.rglob("*.log"):
            relative = log.relative_to(root)
            if log.is_file() and not _DATA_DIRECTORIES.intersection(relative.parts):
                (kept / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, kept / relative)
        shutil.rmtree(root, ignore_errors=True)


#: Where the servers keep their data, whose `*.log` files are not logs of ours (SeaweedFS's
#: LevelDB journals, say).
_DATA_DIRECTORIES = frozenset({"data", "pgdata", "jetstream"})


def gateway_replica_settings(stack: EmbeddedStack, **overrides: Any) -> GatewaySettings:
    """Settings for another gateway replica of `stack`: its database, NATS user, secrets and
    notifier (serve `create_app(...)` of them with `serving`)."""
    from pydantic import SecretStr

    from imagetron_gateway.settings import GatewaySettings

    nats = stack.nats_settings("gateway")
    values: dict[str, Any] = {
        "database_url": stack.infra.postgres.dsn,
        "nats_url": nats.nats_url,
        "nats_user": nats.nats_user,
        "nats_password": nats.nats_password,
        "notifier_url": f"http://{LOCALHOST}:{stack.ports.notifier}",
        "events_token_secret": SecretStr(stack.secrets.events_token_secret),
        "webhook_secret": SecretStr(stack.secrets.webhook_secret),
        "webhook_token_key": SecretStr(stack.secrets.webhook_token_key),
        "log_json": False,
    }
    return GatewaySettings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def serving(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Run `app` in a real uvicorn on 127.0.0.1 (lifespan included) and yield its base URL.

    Real sockets matter for streaming: httpx's ASGI transport buffers whole responses."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host=LOCALHOST,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                # uvicorn answers a failed start-up (lifespan error, port taken) with
                # SystemExit: say so as a plain error, not as the end of the test session.
                try:
                    task.result()
                except SystemExit as exited:
                    raise RuntimeError(
                        f"uvicorn exited during start-up (code {exited.code}); see the log"
                    ) from None
                raise RuntimeError("uvicorn exited during start-up")
            await asyncio.sleep(0.02)
        yield f"http://{LOCALHOST}:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class EventLog:
    """Everything one SSE connection received, in order: (seq, type, payload)."""

    events: list[Event] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(
        self,
        predicate: Callable[[list[Event]], bool],
        timeout: float = EVENT_TIMEOUT,  # noqa: ASYNC109 - a deadline for the whole wait
    ) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self.events)), timeout)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [data for _, t, data in self.events if t == kind]


async def listen(client: httpx.AsyncClient, log: EventLog, connected: asyncio.Event) -> None:
    async with aconnect_sse(client, "GET", "/api/v1/events", timeout=None) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        connected.set()
        async for sse in source.aiter_sse():
            if not sse.event or sse.event == "message":
                continue
            async with log.changed:
                log.events.append((int(sse.id), sse.event, json.loads(sse.data)))
                log.changed.notify_all()


#: Debian's chromium under Playwright (its own browser download cannot work here): headless,
#: no sandbox (containers), nothing that reaches out to the internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_or_reason() -> tuple[str | None, str]:
    """The chromium executable, or None and why a browser test cannot run (in CI it must:
    `.ci/run` installs Debian's package)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is not None:
        return path, ""
    if os.environ.get("CI"):
        return None, "chromium is not installed; .ci/run installs Debian's package"
    return None, "chromium is not installed (apt-get install chromium)"
