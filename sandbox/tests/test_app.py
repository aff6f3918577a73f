"""App factory, health endpoints, settings, clean shutdown and the command-line entry point."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httpx
import pytest

from imagetron_sandbox import SandboxSettings, create_app

API_KEY = "test-goapi-key"


async def test_health_endpoints(sandbox):
    for path, expected in (("/livez", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        response = await sandbox.http.get(sandbox.base_url + path)
        assert response.status_code == 200
        assert response.json() == expected


async def test_not_ready_before_the_lifespan_started():
    transport = httpx.ASGITransport(app=create_app(SandboxSettings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        assert (await client.get("/livez")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503


def test_settings_come_from_prefixed_environment(monkeypatch):
    monkeypatch.setenv("IMAGETRON_SANDBOX_PORT", "9123")
    monkeypatch.setenv("IMAGETRON_SANDBOX_GOAPI_API_KEY", "k")
    monkeypatch.setenv("IMAGETRON_SANDBOX_PROGRESS_STEPS", "[0, 50]")
    settings = SandboxSettings()
    assert settings.port == 9123
    assert settings.goapi_api_key == "k"
    assert settings.progress_steps == (0, 50)
    assert settings.base_url == "http://127.0.0.1:9123"
    assert SandboxSettings(public_base_url="https://x.test/").base_url == "https://x.test"
    with pytest.raises(ValueError, match="increasing"):
        SandboxSettings(progress_steps=(50, 10))


async def test_shutdown_cancels_background_tasks(serve_app, sandbox_settings, receiver):
    app = None

    def build(port):
        nonlocal app
        app = create_app(sandbox_settings(port))
        return app

    async with serve_app(build) as base_url, httpx.AsyncClient() as client:
        response = await client.post(
            f"{base_url}/api/v1/task",
            headers={"x-api-key": API_KEY},
            json={
                "model": "midjourney",
                "task_type": "imagine",
                "input": {"prompt": "forever --sandbox-stuck"},
                "config": {"webhook_config": {"endpoint": receiver.url, "secret": "s"}},
            },
        )
        assert response.status_code == 200
        await asyncio.sleep(0.1)
        assert app.state.sandbox.supervisor.active == 2  # the task and its webhook outbox
    assert app.state.sandbox.supervisor.active == 0


async def test_module_entry_point_serves(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "IMAGETRON_SANDBOX_PORT": str(port),
        "IMAGETRON_SANDBOX_LOG_LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imagetron_sandbox", env=env, cwd=tmp_path
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):  # 30 s: importing takes seconds on a busy machine
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/readyz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("sandbox did not come up")
            assert response.json() == {"status": "ready"}
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
