"""Only real PNG, JPEG and WebP images within the pixel cap get through."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from imagetron_images.adapters.image_files import (
    ImageWork,
    PillowImageInspector,
    PillowThumbnailer,
    PixelBudget,
    Thumbnails,
    inspect_image,
    thumbnail_image,
)
from imagetron_images.app.ports import ImageWorkUnavailable, InvalidImage


def encoded(fmt: str, size: tuple[int, int] = (30, 20), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "teal").save(out, format=fmt)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`x`height` but that carries (almost) no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


inspector = PillowImageInspector(max_pixels=10_000)


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
async def test_accepted_formats(fmt: str, content_type: str, extension: str) -> None:
    data = encoded(fmt)
    file = (await inspector.inspect(data)).file
    assert (file.content_type, file.extension) == (content_type, extension)
    assert (file.width, file.height) == (30, 20)
    assert file.size_bytes == len(data)
    assert file.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "ICO", "PPM"])
async def test_other_formats_are_refused(fmt: str) -> None:
    with pytest.raises(InvalidImage, match="PNG, JPEG or WebP"):
        await inspector.inspect(encoded(fmt, (16, 16)))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html>not found</html>",
        b"\x89PNG\r\n\x1a\n",
        b"%PDF-1.7",
        b"\xff\xd8\xff" + b"\0" * 10,
    ],
)
async def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        await inspector.inspect(data)


async def test_a_truncated_image_is_refused() -> None:
    data = encoded("PNG", (60, 60))
    with pytest.raises(InvalidImage, match="corrupt"):
        await inspector.inspect(data[: len(data) // 2])


async def test_the_pixel_cap_is_inclusive() -> None:
    assert await inspector.inspect(encoded("PNG", (100, 100)))
    with pytest.raises(InvalidImage, match="101x100"):
        await inspector.inspect(encoded("PNG", (101, 100)))


async def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    # 100 000 x 100 000 pixels would be 30 GB decoded: refused before any decoding.
    with pytest.raises(InvalidImage, match="pixels"):
        await PillowImageInspector(max_pixels=64_000_000).inspect(png_claiming(100_000, 100_000))


async def test_a_header_within_the_cap_without_its_pixels_is_corrupt() -> None:
    with pytest.raises(InvalidImage, match="corrupt"):
        await inspector.inspect(png_claiming(50, 50))


thumbnailer = PillowThumbnailer(max_pixels=5_000_000, thumbnails=Thumbnails(max_side=400))


@pytest.mark.parametrize(
    ("fmt", "size", "mode", "expected"),
    [
        ("PNG", (1600, 1000), "RGB", (400, 250)),
        ("JPEG", (900, 1800), "RGB", (200, 400)),
        ("WEBP", (1024, 1024), "RGB", (400, 400)),
        ("PNG", (120, 80), "RGB", (120, 80)),  # never enlarged
    ],
)
async def test_a_thumbnail_is_a_small_webp_of_the_same_shape(fmt, size, mode, expected):
    data = encoded(fmt, size, mode)
    thumb = await thumbnailer.thumbnail(data)
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "WEBP"
        assert image.size == expected


async def test_a_thumbnail_keeps_transparency():
    out = io.BytesIO()
    Image.new("RGBA", (800, 600), (0, 128, 128, 0)).save(out, format="PNG")
    with Image.open(io.BytesIO(await thumbnailer.thumbnail(out.getvalue()))) as image:
        assert image.mode == "RGBA"
        assert image.getpixel((10, 10))[3] == 0


async def test_a_thumbnail_of_a_large_image_is_small_in_bytes():
    noisy = Image.effect_noise((2048, 2048), 64).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    thumb = await thumbnailer.thumbnail(out.getvalue())
    assert len(thumb) < 60_000 < len(out.getvalue())


@pytest.mark.parametrize(
    "data", [b"<html>not an image</html>", encoded("PNG")[:40], png_claiming(5000, 5000)]
)
async def test_no_thumbnail_of_what_is_not_an_acceptable_image(data):
    with pytest.raises(InvalidImage):
        await thumbnailer.thumbnail(data)


@pytest.mark.parametrize("size", [(2100, 100), (100, 2100), (4000, 1)])
async def test_absurd_aspect_ratios_are_refused_before_decoding(size):
    with pytest.raises(InvalidImage, match="times its width"):
        await PillowImageInspector(max_pixels=64_000_000).inspect(png_claiming(*size))


async def test_concurrent_decodes_share_one_pixel_budget():
    """Three 600-pixel images with a 1,000-pixel budget: never two decodes at once."""
    budget = PixelBudget(1_000)
    seen: list[int] = []

    class Watched(ImageWork):
        async def run(self, fn, *args):
            if fn is inspect_image:  # the decode, with the pixels it holds in the budget
                seen.append(budget.in_use)
            return await super().run(fn, *args)

    inspector = PillowImageInspector(max_pixels=10_000, budget=budget, work=Watched(0))
    images = [encoded("PNG", (30, 20)) for _ in range(3)]
    results = await asyncio.gather(*(inspector.inspect(i) for i in images))
    assert [r.file.width * r.file.height for r in results] == [600, 600, 600]
    assert seen == [600, 600, 600]  # each decode alone in the budget
    assert budget.in_use == 0


@pytest.mark.parametrize(
    ("fmt", "size", "mode", "expected"),
    [
        ("PNG", (1600, 1000), "RGB", (400, 250)),
        ("JPEG", (900, 1800), "RGB", (200, 400)),
        ("PNG", (800, 600), "RGBA", (400, 300)),
        ("PNG", (120, 80), "P", (120, 80)),  # never enlarged
    ],
)
async def test_inspection_makes_the_thumbnail_from_the_same_decode(fmt, size, mode, expected):
    """What inspection returns as the thumbnail is what the thumbnailer makes of the same
    bytes (a JPEG aside: the thumbnailer decodes it at a reduced scale), and the image is
    decoded once for both."""
    data = encoded(fmt, size, mode)
    decodes: list[str] = []
    opened = Image.open

    def counted(*args, **kwargs):
        decodes.append(fmt)
        return opened(*args, **kwargs)

    inspector = PillowImageInspector(max_pixels=5_000_000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image, "open", counted)
        inspected = await inspector.inspect(data)
    assert len(decodes) == 2  # the header (the pixel budget), then the one decode
    assert inspected.thumbnail_problem is None
    with Image.open(io.BytesIO(inspected.thumbnail)) as image:
        assert (image.format, image.size) == ("WEBP", expected)
    if fmt == "PNG":
        assert inspected.thumbnail == thumbnail_image(data, 5_000_000, Thumbnails())


async def test_an_image_whose_thumbnail_fails_is_still_accepted(monkeypatch):
    def failing(image, thumbnails):
        raise OSError("encoder error -2")

    monkeypatch.setattr("imagetron_images.adapters.image_files._shrunk", failing)
    inspected = await inspector.inspect(encoded("PNG"))
    assert inspected.file.extension == "png"
    assert inspected.thumbnail is None
    assert inspected.thumbnail_problem == "The thumbnail could not be made: encoder error -2"


async def test_thumbnails_wait_in_the_same_pixel_budget_as_inspections():
    """A thumbnail asked for later decodes the whole image too: it holds its pixels."""
    budget = PixelBudget(1_000)
    seen: list[tuple[str, int]] = []

    class Watched(ImageWork):
        async def run(self, fn, *args):
            if fn in (inspect_image, thumbnail_image):
                seen.append((fn.__name__, budget.in_use))
            return await super().run(fn, *args)

    work = Watched(0)
    inspector = PillowImageInspector(max_pixels=10_000, budget=budget, work=work)
    thumbnailer = PillowThumbnailer(max_pixels=10_000, budget=budget, work=work)
    data = encoded("PNG", (30, 20))
    await asyncio.gather(inspector.inspect(data), thumbnailer.thumbnail(data))
    assert sorted(seen) == [("inspect_image", 600), ("thumbnail_image", 600)]
    assert budget.in_use == 0


async def test_image_work_runs_in_worker_processes_and_survives_one_that_dies() -> None:
    """Pillow's work leaves the service's interpreter (it shared the lock with the event loop
    that applies callbacks); what it finds, refusals included, comes back the same."""
    work = ImageWork(1)
    try:
        inspector = PillowImageInspector(max_pixels=10_000, work=work)
        thumbnailer = PillowThumbnailer(
            max_pixels=10_000, work=work, thumbnails=Thumbnails(max_side=8)
        )
        assert await work.run(os.getpid) != os.getpid()
        inspected = await inspector.inspect(encoded("PNG"))
        file = inspected.file
        assert (file.content_type, file.width, file.height) == ("image/png", 30, 20)
        assert inspected.thumbnail is not None
        assert inspected.thumbnail.startswith(b"RIFF")
        with pytest.raises(InvalidImage, match="the limit is 10000"):
            await inspector.inspect(png_claiming(200, 200))
        with Image.open(io.BytesIO(await thumbnailer.thumbnail(encoded("JPEG")))) as small:
            assert (small.format, small.size) == ("WEBP", (8, 5))
        # A worker that dies (killed, out of memory) is replaced; twice in a row is a
        # transient failure the job retries later.
        with pytest.raises(ImageWorkUnavailable):
            await work.run(os._exit, 1)
        assert (await inspector.inspect(encoded("WEBP"))).file.extension == "webp"
    finally:
        await work.close()


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an ended child its new parent has not reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_image_workers_end_when_the_service_is_killed() -> None:
    """A SIGKILLed images service (a supervisor's restart, out of memory) leaves no worker
    behind: before, each kill orphaned the pool's processes for good."""
    service = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, os, time\n"
            "from imagetron_images.adapters.image_files import ImageWork\n"
            "work = ImageWork(2)\n"
            "async def main():\n"
            "    pids = {await work.run(os.getpid) for _ in range(8)}\n"
            "    print(*pids, flush=True)\n"
            "    await asyncio.sleep(60)\n"
            "asyncio.run(main())\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers: list[int] = []
    try:
        assert service.stdout is not None
        workers = [int(pid) for pid in service.stdout.readline().split()]
        assert workers
        assert all(_running(pid) for pid in workers)
        service.send_signal(signal.SIGKILL)
        service.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if _running(pid)]
    finally:
        service.kill()
        service.wait(timeout=10)
        for pid in filter(_running, workers):  # the test failed: leave nothing behind
            os.kill(pid, signal.SIGKILL)
