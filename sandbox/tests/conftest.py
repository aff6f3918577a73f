"""Real uvicorn servers on free loopback ports: the sandbox and a tiny webhook receiver."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from imagetron_sandbox import SandboxSettings, create_app

FAST = {
    "pending_ms": 20,
    "progress_interval_ms": 25,
    "webhook_backoff_ms": 20,
    "webhook_max_attempts": 4,
    "webhook_timeout_s": 2.0,
    "grid_long_side": 512,
    "upscale_long_side": 1024,
}
API_KEY = "test-goapi-key"


@asynccontextmanager
async def serve(build: Callable[[int], FastAPI]) -> AsyncIterator[str]:
    """Serve ``build(port)`` with uvicorn on 127.0.0.1:<free port>; yields the base URL."""
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that declare it,
    # and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(build(port), log_level="warning", lifespan="on", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


async def eventually(check: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    json: dict[str, Any]
    at: float


@dataclass
class WebhookReceiver:
    """Records every webhook; can answer 500 to the first ``fail_next`` deliveries."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=500)
            self.deliveries.append(
                Delivery(dict(request.headers), body, await request.json(), time.monotonic())
            )
            return Response(status_code=204)

        return app

    def reset(self) -> None:
        self.deliveries.clear()
        self.fail_next = 0

    def for_task(self, task_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.json["data"]["task_id"] == task_id]

    async def settled(self, task_id: str, count: int) -> list[Delivery]:
        """The task's deliveries once ``count`` arrived (and a moment passed for strays)."""
        await eventually(lambda: len(self.for_task(task_id)) >= count)
        await asyncio.sleep(0.05)
        deliveries = self.for_task(task_id)
        assert len(deliveries) == count
        return deliveries

    async def wait_terminal(self, task_id: str, within: float = 5.0) -> list[Delivery]:
        return await eventually(
            lambda: (
                self.for_task(task_id)
                if any(
                    d.json["data"]["status"] in ("completed", "failed", "cancelled")
                    for d in self.for_task(task_id)
                )
                else None
            ),
            within,
        )


@dataclass
class SandboxClient:
    """A GoAPI/OpenAI client for tests, bound to one running sandbox."""

    base_url: str
    http: httpx.AsyncClient
    webhook_url: str = ""
    webhook_secret: str = "s3cret-with spaces & symbols!"

    async def submit(
        self, task_type: str, task_input: dict[str, Any], *, webhook: bool = True
    ) -> httpx.Response:
        config: dict[str, Any] = {"service_mode": ""}
        if webhook:
            config["webhook_config"] = {
                "endpoint": self.webhook_url,
                "secret": self.webhook_secret,
            }
        return await self.http.post(
            f"{self.base_url}/api/v1/task",
            json={
                "model": "midjourney",
                "task_type": task_type,
                "input": task_input,
                "config": config,
            },
            headers={"x-api-key": API_KEY},
        )

    async def imagine(self, prompt: str, **task_input: Any) -> dict[str, Any]:
        response = await self.submit("imagine", {"prompt": prompt, **task_input})
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def task(self, task_id: str) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.base_url}/api/v1/task/{task_id}", headers={"x-api-key": API_KEY}
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def finished(self, task_id: str, within: float = 5.0) -> dict[str, Any]:
        async def poll() -> dict[str, Any]:
            while True:
                data = await self.task(task_id)
                if data["status"] in ("completed", "failed", "cancelled"):
                    return data
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(poll(), within)

    async def completed(self, prompt: str, **task_input: Any) -> dict[str, Any]:
        created = await self.imagine(prompt, **task_input)
        done = await self.finished(created["task_id"])
        assert done["status"] == "completed", done
        return done

    async def chat(self, body: dict[str, Any], key: str = "sk-test") -> httpx.Response:
        return await self.http.post(
            f"{self.base_url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
        )

    async def set_faults(self, **knobs: Any) -> None:
        response = await self.http.put(f"{self.base_url}/sandbox/faults", json=knobs)
        assert response.status_code == 200, response.text


StartSandbox = Callable[..., Awaitable[SandboxClient]]


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
async def receiver_server() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with serve(lambda _port: receiver.app()) as base_url:
        receiver.url = f"{base_url}/hook"
        yield receiver


@pytest.fixture
def receiver(receiver_server: WebhookReceiver) -> WebhookReceiver:
    receiver_server.reset()
    return receiver_server


def _settings(port: int, **overrides: Any) -> SandboxSettings:
    return SandboxSettings(
        **{"host": "127.0.0.1", "port": port, "goapi_api_key": API_KEY, **FAST, **overrides}
    )


@pytest.fixture(scope="session")
async def shared_sandbox(
    http: httpx.AsyncClient, receiver_server: WebhookReceiver
) -> AsyncIterator[SandboxClient]:
    async with serve(lambda port: create_app(_settings(port))) as base_url:
        yield SandboxClient(base_url, http, webhook_url=receiver_server.url)


@pytest.fixture
async def sandbox(shared_sandbox: SandboxClient, receiver: WebhookReceiver) -> SandboxClient:
    """The shared sandbox with all faults reset and an empty webhook log."""
    response = await shared_sandbox.http.delete(f"{shared_sandbox.base_url}/sandbox/faults")
    assert response.status_code == 200
    return shared_sandbox


@pytest.fixture
async def start_sandbox(
    http: httpx.AsyncClient, receiver: WebhookReceiver
) -> AsyncIterator[StartSandbox]:
    """Start an extra sandbox with its own settings (stopped after the test)."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> SandboxClient:
            base_url = await stack.enter_async_context(
                serve(lambda port: create_app(_settings(port, **overrides)))
            )
            return SandboxClient(base_url, http, webhook_url=receiver.url)

        yield start


@pytest.fixture
def serve_app() -> Callable[[Callable[[int], FastAPI]], Any]:
    """The ``serve`` helper: ``async with serve_app(lambda port: app) as base_url: ...``."""
    return serve


@pytest.fixture
def sandbox_settings() -> Callable[..., SandboxSettings]:
    """Fast test settings for a given port (plus overrides)."""
    return _settings
