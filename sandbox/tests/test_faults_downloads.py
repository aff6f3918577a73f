"""Fault knobs of image downloads: slow, 500, cut, oversized, not an image."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image, UnidentifiedImageError


def is_png(content: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        return False
    return True


async def grid_url(sandbox, prompt: str) -> str:
    done = await sandbox.completed(prompt)
    return done["output"]["image_url"]


async def test_slow_download_trickles_the_body(sandbox):
    url = await grid_url(sandbox, "a snail --sandbox-slow-download=250")
    started = time.monotonic()
    async with sandbox.http.stream("GET", url) as response:
        first_byte = time.monotonic() - started
        content = await response.aread()
    assert response.status_code == 200
    assert first_byte < 0.2  # headers come at once; the body is what is slow
    assert time.monotonic() - started >= 0.24
    assert is_png(content)


async def test_http_500_download(sandbox):
    await sandbox.set_faults(download_error="http_500")
    url = await grid_url(sandbox, "a broken vase")
    response = await sandbox.http.get(url)
    assert response.status_code == 500


async def test_connection_cut_mid_body(sandbox):
    url = await grid_url(sandbox, "a frayed rope --sandbox-download-cut")
    with pytest.raises(httpx.RemoteProtocolError):
        await sandbox.http.get(url)
    with pytest.raises(httpx.RemoteProtocolError):
        await sandbox.http.get(url)


async def test_fault_attempts_let_retries_succeed(sandbox):
    url = await grid_url(sandbox, "a second chance --sandbox-download-500=2")
    codes = [(await sandbox.http.get(url)).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    split_url = url.replace("-grid.png", "-1.png")
    assert (await sandbox.http.get(split_url)).status_code == 500  # counted per image


async def test_oversized_download(sandbox):
    size = 3 * 1024 * 1024
    url = await grid_url(sandbox, f"a whale --sandbox-oversized={size}")
    response = await sandbox.http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert int(response.headers["content-length"]) == size
    assert len(response.content) == size
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_not_an_image_labelled_png(sandbox):
    await sandbox.set_faults(download_not_image=True)
    url = await grid_url(sandbox, "a mirage")
    response = await sandbox.http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert not is_png(response.content)
    await sandbox.set_faults()
    assert is_png((await sandbox.http.get(url)).content)


async def test_follow_up_tasks_inherit_prompt_faults(sandbox):
    origin = await sandbox.completed("a cracked bell --sandbox-download-500")
    response = await sandbox.submit("upscale", {"origin_task_id": origin["task_id"], "index": "1"})
    done = await sandbox.finished(response.json()["data"]["task_id"])
    assert done["status"] == "completed"
    assert (await sandbox.http.get(done["output"]["image_url"])).status_code == 500


async def test_unknown_image_is_404(sandbox):
    response = await sandbox.http.get(f"{sandbox.base_url}/images/nothing-here.png")
    assert response.status_code == 404
