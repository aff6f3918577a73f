"""Validating downloaded bytes as an image we accept, and shrinking it, with Pillow.

Pillow's work is CPU-bound and runs off the event loop (`ImageWork`): in threads of the
service by default, or in worker processes of its own (`IMAGETRON_IMAGE_WORKERS`), where it
does not share the interpreter lock with the event loop that applies provider callbacks
(py-spy: a third of the images process's samples were Pillow threads while five images of a
task were stored). Which is faster for the webhook-to-browser delay is not settled yet:
docs/benchmarks.md has the measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import multiprocessing
import os
import select
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from PIL import Image as PillowImage
from PIL import UnidentifiedImageError

from imagetron_images.app.ports import ImageWorkUnavailable, InspectedImage, InvalidImage
from imagetron_images.domain import ImageFile

_T = TypeVar("_T")

# Pillow format name → (content type, file extension). Nothing else is accepted.
ACCEPTED_FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}


#: Longest side over shortest side: beyond it an image is a decoding trap, not a picture.
MAX_ASPECT_RATIO = 20


class PixelBudget:
    """Pixels being decoded at once, across every concurrent decode of the process: a decode
    waits until its image fits, so memory stays bounded however many arrive together."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        pixels = min(pixels, self.total)  # one image larger than the budget waits for all
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_use + pixels <= self.total)
            self.in_use += pixels
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= pixels
                self._changed.notify_all()


@contextmanager
def decoding(data: bytes, max_pixels: int) -> Iterator[PillowImage.Image]:
    """The image in `data`, opened only with the decoders of the formats we accept and only
    within the pixel cap; whatever goes wrong while it is used is an InvalidImage."""
    try:
        # `formats` keeps Pillow from even trying its other (larger, riskier) decoders.
        with PillowImage.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise InvalidImage(
                    f"The image is {width}x{height} pixels; the limit is {max_pixels}."
                )
            if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
                raise InvalidImage(
                    f"The image is {width}x{height} pixels: longer than "
                    f"{MAX_ASPECT_RATIO} times its width is not a picture we keep."
                )
            yield image
    except UnidentifiedImageError as exc:
        raise InvalidImage("The data is not a PNG, JPEG or WebP image.") from exc
    except PillowImage.DecompressionBombError as exc:
        raise InvalidImage(f"The image is too large to decode: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"The image is corrupt: {exc}") from exc


class ImageWork:
    """Where Pillow's work runs: `workers` processes of its own, started when first needed
    (`workers=0`: threads of this process). A pool whose process died (killed, out of
    memory) is replaced and the work tried once more; then it is a transient failure."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self.workers == 0:
            return await asyncio.to_thread(fn, *args)
        loop = asyncio.get_running_loop()
        retried = False
        while True:
            pool = self._pool or self._start()
            try:
                return await loop.run_in_executor(pool, functools.partial(fn, *args))
            except BrokenProcessPool as exc:
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
                if retried:
                    raise ImageWorkUnavailable(f"the image worker process died: {exc}") from exc
                retried = True

    def _start(self) -> ProcessPoolExecutor:
        # Spawned, not forked: this process runs threads and an event loop.
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with,
            initargs=(os.getpid(),),
        )
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _die_with(service_pid: int) -> None:
    """A worker's first step: end when the service ends, however it ends. A pool's worker
    waits on a queue whose write end it holds itself, so a SIGKILLed service (supervisor's
    restart, out of memory) would leave it waiting for ever: a daemon thread waits on the
    service's pidfd (a process handle the kernel marks readable when it exits; unlike
    PR_SET_PDEATHSIG it does not depend on which of the service's threads started the worker)."""
    try:
        handle = os.pidfd_open(service_pid)
    except ProcessLookupError:
        os._exit(1)
    if os.getppid() != service_pid:  # it ended, its PID reused, before the pidfd was opened
        os._exit(1)

    def watch() -> None:
        select.select([handle], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="imagetron-service-watch", daemon=True).start()


def image_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    with decoding(data, max_pixels) as image:
        width, height = image.size
    return width, height


@dataclass(frozen=True)
class Thumbnails:
    """How thumbnails are made: at most `max_side` pixels on the long side (never enlarged),
    WebP at `quality`."""

    max_side: int = 400
    quality: int = 80


def inspect_image(data: bytes, max_pixels: int, thumbnails: Thumbnails) -> InspectedImage:
    """The image checked in full (a truncated or corrupt body fails), and its thumbnail made
    from the same decode: decoding is most of the work, and each stored image was decoded
    twice, once to check it and once to shrink it."""
    with decoding(data, max_pixels) as image:
        width, height = image.size
        image.load()  # a truncated or corrupt body fails here
        accepted = ACCEPTED_FORMATS.get(image.format or "")
        if accepted is None or width < 1 or height < 1:
            raise InvalidImage("The data is not a PNG, JPEG or WebP image.")
        content_type, extension = accepted
        file = ImageFile(
            content_type=content_type,
            extension=extension,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            width=width,
            height=height,
        )
        try:
            return InspectedImage(file, _shrunk(image, thumbnails))
        except (OSError, ValueError) as exc:
            return InspectedImage(file, None, f"The thumbnail could not be made: {exc}")


def thumbnail_image(data: bytes, max_pixels: int, thumbnails: Thumbnails) -> bytes:
    with decoding(data, max_pixels) as image:
        # `draft` lets JPEG decode at a reduced scale: far less work for big photos.
        image.draft("RGB", (thumbnails.max_side, thumbnails.max_side))
        return _shrunk(image, thumbnails)


def _shrunk(image: PillowImage.Image, thumbnails: Thumbnails) -> bytes:
    """`image` as a thumbnail (it may shrink `image` itself: used last)."""
    mode = "RGBA" if _has_alpha(image) else "RGB"
    # Already in that mode (most renders): shrunk as it is, not copied first at full size.
    small = image if image.mode == mode else image.convert(mode)
    # Bicubic after Pillow's own integer reduction, and WebP's quick method 2: a fifth of
    # the time of Lanczos and method 4 for a thumbnail-sized result.
    side = thumbnails.max_side
    small.thumbnail((side, side), PillowImage.Resampling.BICUBIC)
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=thumbnails.quality, method=2)
    return out.getvalue()


_THREADS = ImageWork(0)


class PillowDecodes:
    """What the Pillow adapters share: only formats we accept are decoded, with a pixel cap,
    on `work`, once the image's pixels fit in `budget` (the header says how many the decode
    will hold; every decode waits in the same budget)."""

    def __init__(
        self,
        *,
        max_pixels: int,
        budget: PixelBudget | None = None,
        work: ImageWork = _THREADS,
        thumbnails: Thumbnails = Thumbnails(),
    ) -> None:
        self._max_pixels = max_pixels
        self._budget = budget or PixelBudget(max_pixels)
        self._work = work
        self._thumbnails = thumbnails

    async def _decode(self, decode: Callable[[bytes, int, Thumbnails], _T], data: bytes) -> _T:
        width, height = await self._work.run(image_size, data, self._max_pixels)
        async with self._budget.hold(width * height):
            return await self._work.run(decode, data, self._max_pixels, self._thumbnails)


class PillowImageInspector(PillowDecodes):
    """The ImageInspector port: a real PNG, JPEG or WebP of at most `max_pixels` pixels, and
    its thumbnail."""

    async def inspect(self, data: bytes) -> InspectedImage:
        return await self._decode(inspect_image, data)


class PillowThumbnailer(PillowDecodes):
    """The Thumbnailer port (thumbnails asked for later: those of images stored before,
    previews): the image shrunk as `thumbnails` says."""

    async def thumbnail(self, data: bytes) -> bytes:
        return await self._decode(thumbnail_image, data)


def _has_alpha(image: PillowImage.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
