"""The submission file, rendered with the real Pillow and exiv2: JPEG in sRGB whatever the
original (alpha, CMYK with and without a profile, 16-bit, 5 MP), enlarged when asked, with
title and keywords embedded where the agency reads them."""

from __future__ import annotations

import io

import pyexiv2
import pytest
from PIL import Image, ImageCms

from imagetron_publisher.adapters.rendering import PillowRenderer
from imagetron_publisher.app.ports import UnusableOriginal
from imagetron_publisher.domain.publication import StockMetadata

METADATA = StockMetadata(title="Ripe pear on línen", keywords=("pear", "fruit", "still life"))


@pytest.fixture
def renderer() -> PillowRenderer:
    return PillowRenderer(max_pixels=40_000_000)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_five_megapixels_become_a_jpeg_in_srgb_with_xmp_and_iptc(renderer):
    original = encode(Image.new("RGB", (2560, 1960), (200, 120, 40)))
    rendered = await renderer.render(original, enlarge=1, metadata=METADATA)
    image = decoded(rendered.data)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (2560, 1960))
    assert (rendered.width, rendered.height) == (2560, 1960)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    with pyexiv2.ImageData(rendered.data) as metadata:
        xmp, iptc = metadata.read_xmp(), metadata.read_iptc()
    assert xmp["Xmp.dc.title"] == {'lang="x-default"': "Ripe pear on línen"}
    assert xmp["Xmp.dc.subject"] == ["pear", "fruit", "still life"]
    assert iptc["Iptc.Application2.ObjectName"] == "Ripe pear on línen"
    assert iptc["Iptc.Application2.Keywords"] == ["pear", "fruit", "still life"]
    assert (
        max(abs(a - b) for a, b in zip(image.getpixel((10, 10)), (200, 120, 40), strict=True)) <= 2
    )


async def test_a_png_with_alpha_is_flattened_onto_white(renderer):
    original = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # transparent red
    original.paste((0, 0, 255, 255), (0, 0, 32, 64))  # opaque blue left half
    rendered = await renderer.render(encode(original), enlarge=1, metadata=METADATA)
    image = decoded(rendered.data)
    assert image.mode == "RGB"
    assert all(c >= 250 for c in image.getpixel((48, 32)))  # white, not black or red
    assert image.getpixel((16, 32))[2] >= 240


async def test_cmyk_becomes_rgb_even_with_an_unusable_profile(renderer):
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red in CMYK
    for params in ({}, {"icc_profile": _unusable_profile()}):
        rendered = await renderer.render(
            encode(cmyk, "JPEG", **params), enlarge=1, metadata=METADATA
        )
        image = decoded(rendered.data)
        r, g, b = image.getpixel((32, 32))
        assert image.mode == "RGB"
        assert r > 180, (r, g, b)
        assert max(g, b) < 90, (r, g, b)


async def test_an_icc_tagged_rgb_original_is_converted_to_srgb(renderer):
    # In a profile whose red and green primaries are swapped, (0, 200, 0) is a red.
    original = Image.new("RGB", (32, 32), (0, 200, 0))
    rendered = await renderer.render(
        encode(original, "PNG", icc_profile=_swapped_primaries()), enlarge=1, metadata=METADATA
    )
    r, g, b = decoded(rendered.data).getpixel((16, 16))
    assert r > 150, (r, g, b)
    assert max(g, b) < 60, (r, g, b)


async def test_sixteen_bit_grey_is_scaled_not_clipped(renderer):
    original = Image.new("I;16", (32, 32), 32768)  # half grey in 16 bits
    rendered = await renderer.render(encode(original), enlarge=1, metadata=METADATA)
    r, g, b = decoded(rendered.data).getpixel((16, 16))
    assert abs(r - 128) <= 2
    assert r == g == b


async def test_enlarging_doubles_each_side(renderer):
    original = encode(Image.new("RGB", (200, 150), (10, 20, 30)))
    rendered = await renderer.render(original, enlarge=2, metadata=METADATA)
    assert decoded(rendered.data).size == (400, 300) == (rendered.width, rendered.height)


async def test_a_decompression_bomb_is_refused_before_decoding():
    renderer = PillowRenderer(max_pixels=1_000_000)
    bomb = encode(Image.new("L", (2000, 1000)))  # 2 MP, tiny compressed
    with pytest.raises(UnusableOriginal, match="at most 1000000 pixels"):
        await renderer.render(bomb, enlarge=1, metadata=METADATA)
    with pytest.raises(UnusableOriginal, match="not a PNG, JPEG or WebP"):
        await renderer.render(b"<html>", enlarge=1, metadata=METADATA)


def _unusable_profile() -> bytes:
    """Pillow ships no CMYK profile; an unusable one must fall back to a plain conversion."""
    return b"\x00" * 128


def _swapped_primaries() -> bytes:
    """Pillow's sRGB profile with the red and green colourant tags swapped."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = int.from_bytes(data[128:132], "big")
    entries = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    data[red + 4 : red + 12], data[green + 4 : green + 12] = (
        data[green + 4 : green + 12],
        data[red + 4 : red + 12],
    )
    return bytes(data)
