"""The artwork is deterministic and shaped as asked."""

from __future__ import annotations

import io

from PIL import Image

from imagetron_sandbox.images.geometry import AspectRatio
from imagetron_sandbox.images.render import Artwork, render_grid, render_upscale


def size_of(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def test_same_inputs_same_pixels_other_seed_other_pixels():
    art = Artwork("a harbor at dawn", seed="task-1", version="v7")
    size = AspectRatio.parse("3:2").size(256)
    first, second = render_grid(art, size), render_grid(art, size)
    assert first == second
    assert size_of(first.grid) == (256, 170)
    assert [size_of(split) for split in first.splits] == [(128, 85)] * 4
    other = render_grid(Artwork("a harbor at dawn", seed="task-2", version="v7"), size)
    assert other.grid != first.grid
    upscaled = render_upscale(first.splits[0], art, (512, 340), "U1")
    assert size_of(upscaled) == (512, 340)
    assert upscaled == render_upscale(first.splits[0], art, (512, 340), "U1")


def test_aspect_ratio_parsing():
    assert AspectRatio.parse("16:9").size(1024) == (1024, 576)
    assert AspectRatio.parse(" 9 : 16 ").size(1024) == (576, 1024)
    for bad in ("wide", "0:1", "1:20", "16/9"):
        try:
            AspectRatio.parse(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
