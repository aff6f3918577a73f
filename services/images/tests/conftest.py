"""Fakes of the images service's ports, for handler tests without servers."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
import uvicorn
from PIL import Image as PillowImage

from imagetron_images.app.dependencies import Dependencies
from imagetron_images.app.dispatch import Slots
from imagetron_images.app.ports import InspectedImage, InvalidImage, MalformedProviderMessage
from imagetron_images.domain import (
    Capability,
    ImageFile,
    ProviderRequest,
    ProviderUpdate,
)
from imagetron_platform.testing import InMemoryDatabase

from .fakes import FakePromptLedger, FakeUnitOfWork, Tables


class FakeProvider:
    """Answers from a script: a provider task id, or an exception to raise."""

    name = "goapi"

    def __init__(self) -> None:
        # Every command and cancel; asynchronous (results come by callback or fetch).
        self.capabilities: frozenset[Capability] = frozenset(Capability) - {Capability.synchronous}
        self.requests: list[ProviderRequest] = []
        self.answers: list[str | Exception] = []
        self.updates: list[ProviderUpdate] = []
        self.cancelled: list[str] = []
        self.cancel_answers: list[Exception] = []
        # provider task id -> what `fetch` reports (or raises)
        self.tasks: dict[str, ProviderUpdate | Exception] = {}
        self.fetched: list[str] = []

    async def submit(self, request: ProviderRequest) -> str:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else f"provider-{len(self.requests)}"
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def cancel(self, provider_task_id: str) -> None:
        if self.cancel_answers:
            raise self.cancel_answers.pop(0)
        self.cancelled.append(provider_task_id)

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        self.fetched.append(provider_task_id)
        found = self.tasks.get(provider_task_id)
        if found is None:
            raise AssertionError(f"unexpected fetch of {provider_task_id}")
        if isinstance(found, Exception):
            raise found
        return found

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        update = body.get("update")
        if not isinstance(update, ProviderUpdate):
            raise MalformedProviderMessage("no update in this body")
        return update


class FakeDownloader:
    def __init__(self) -> None:
        self.files: dict[str, bytes | Exception] = {}
        self.requested: list[str] = []

    async def download(self, url: str) -> bytes:
        self.requested.append(url)
        found = self.files.get(url)
        if found is None:
            raise AssertionError(f"unexpected download of {url}")
        if isinstance(found, Exception):
            raise found
        return found


class FakeStore:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.failures: list[Exception] = []
        self.remove_failures: list[Exception] = []

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.objects[key] = (data, content_type)

    async def get(self, key: str) -> bytes:
        return self.objects[key][0]

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def remove(self, key: str) -> None:
        if self.remove_failures:
            raise self.remove_failures.pop(0)
        self.objects.pop(key, None)

    def content_url(self, key: str) -> str:
        return f"https://s3.example/imagetron/{key}?signature=x"


class FakeThumbnailer:
    """Marks the bytes it was given; `refuse` makes it raise InvalidImage."""

    def __init__(self) -> None:
        self.refuse = False
        self.made = 0

    async def thumbnail(self, data: bytes) -> bytes:
        if self.refuse:
            raise InvalidImage("cannot shrink this")
        self.made += 1
        return b"thumb:" + hashlib.sha256(data).hexdigest().encode()


class FakeInspector:
    """Accepts anything: the bytes' facts are made up from their length; the thumbnail is the
    fake thumbnailer's (the real inspector makes it from the same decode)."""

    def __init__(self, thumbnailer: FakeThumbnailer) -> None:
        self.thumbnailer = thumbnailer

    async def inspect(self, data: bytes) -> InspectedImage:
        file = ImageFile(
            content_type="image/png",
            extension="png",
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            width=64,
            height=64,
        )
        try:
            return InspectedImage(file, await self.thumbnailer.thumbnail(data))
        except InvalidImage as exc:
            return InspectedImage(file, None, str(exc))


def png_bytes(width: int = 8, height: int = 8, color: str = "red") -> bytes:
    out = io.BytesIO()
    PillowImage.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


class FakeDownloadSlots:
    """Always a slot at once; records who held one, for which host."""

    def __init__(self) -> None:
        self.held: list[tuple[UUID, str | None]] = []

    @asynccontextmanager
    async def hold(self, owner_id: UUID, host: str | None) -> AsyncIterator[None]:
        self.held.append((owner_id, host))
        yield


@dataclass
class World:
    uow: FakeUnitOfWork
    provider: FakeProvider
    downloader: FakeDownloader
    store: FakeStore
    inspector: FakeInspector
    thumbnailer: FakeThumbnailer
    ledger: FakePromptLedger = field(default_factory=FakePromptLedger)
    download_slots: FakeDownloadSlots = field(default_factory=FakeDownloadSlots)

    def deps(self) -> Dependencies:
        return Dependencies(
            new_uow=lambda: self.uow,
            providers={"goapi": self.provider},
            default_provider="goapi",
            downloader=self.downloader,
            download_slots=self.download_slots,
            inspector=self.inspector,
            store=self.store,
            thumbnailer=self.thumbnailer,
            slots=Slots(per_provider=100),
            prompt_ledger=self.ledger,
        )


@pytest.fixture
def world() -> World:
    return World(
        FakeUnitOfWork(InMemoryDatabase(Tables())),
        FakeProvider(),
        FakeDownloader(),
        FakeStore(),
        FakeInspector(thumbnailer := FakeThumbnailer()),
        thumbnailer,
    )


@pytest.fixture
def make_png() -> Any:
    return png_bytes


# --- real HTTP servers on loopback -----------------------------------------------------


@asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve `app` (or `app(port)` when it is a plain function) with uvicorn on
    127.0.0.1:<free port>; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if inspect.isfunction(app):
        app = app(port)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def serve() -> Any:
    return serve_asgi


async def eventually(check: Any, within: float = 10.0, interval: float = 0.05) -> Any:
    """Await `check()` until it returns something truthy (returned) or time runs out."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s (last: {result!r})")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def wait_for() -> Any:
    return eventually
