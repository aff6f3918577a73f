"""The sandbox's shared state, created per app and reached from routes as a dependency."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import asyncssh
from fastapi import Depends, Request

from imagetron_sandbox.agency.server import AgencyServer
from imagetron_sandbox.chat.service import ChatService
from imagetron_sandbox.faults.store import FaultStore
from imagetron_sandbox.goapi.lifecycle import TaskLifecycle
from imagetron_sandbox.goapi.service import TaskService
from imagetron_sandbox.goapi.webhooks import WebhookSender
from imagetron_sandbox.images.store import ImageStore
from imagetron_sandbox.midjourney_proxy.service import ProxyFace
from imagetron_sandbox.settings import SandboxSettings
from imagetron_sandbox.supervisor import Supervisor


class Sandbox:
    """Everything one running sandbox owns; ``start``/``stop`` are driven by the lifespan."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.faults = FaultStore()
        self.images = ImageStore(max_bytes=settings.image_store_max_mb * 1024 * 1024)
        self.supervisor = Supervisor()
        self.webhooks = WebhookSender(settings)
        lifecycle = TaskLifecycle(settings, self.images, self.webhooks, self.supervisor)
        self.tasks = TaskService(settings, self.faults, self.images, lifecycle)
        self.proxy = ProxyFace(self.tasks)
        self.chat = ChatService(settings, self.faults)
        self._temporary_root = None if settings.agency_root else tempfile.mkdtemp("-agency")
        self.agency = AgencyServer(
            Path(settings.agency_root or self._temporary_root or "."),
            self.faults,
            password=settings.agency_password,
            max_bytes_per_user=settings.agency_max_mb * 1024 * 1024,
        )
        self.ready = False

    async def start(self) -> None:
        self.supervisor.reopen()
        await self.webhooks.open()
        key_path = self.settings.agency_host_key
        host_key = (
            asyncssh.read_private_key(key_path)
            if key_path
            else asyncssh.generate_private_key("ssh-ed25519")
        )
        await self.agency.start(self.settings.host, self.settings.agency_port, host_key)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.agency.stop()
        await self.supervisor.aclose()
        await self.webhooks.aclose()
        if self._temporary_root is not None:
            shutil.rmtree(self._temporary_root, ignore_errors=True)


async def get_sandbox(request: Request) -> Sandbox:
    sandbox = request.app.state.sandbox
    assert isinstance(sandbox, Sandbox)
    return sandbox


SandboxDep = Annotated[Sandbox, Depends(get_sandbox)]
