"""What the publisher's integration tests share (fixtures stay in conftest.py; tests import
from here, never from a conftest)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from PIL import Image as PillowImage

#: The stand-in agency's password for every account.
AGENCY_PASSWORD = "agency-secret"
T = TypeVar("T")


def png(width: int, height: int, mode: str = "RGB", color: Any = (180, 120, 60)) -> bytes:
    out = io.BytesIO()
    PillowImage.new(mode, (width, height), color).save(out, "PNG")
    return out.getvalue()


def noisy_png(width: int, height: int) -> bytes:
    """Noise compresses badly: its JPEG is megabytes, long enough to interrupt."""
    noise = PillowImage.effect_noise((width, height), 64).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "PNG", compress_level=1)
    return out.getvalue()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    async with asyncio.timeout(within):
        while True:
            value = await probe()
            if value is not None:
                return value
            await asyncio.sleep(0.1)
    raise AssertionError(what)  # pragma: no cover - the timeout raises first
