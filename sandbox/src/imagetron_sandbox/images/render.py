"""Deterministic placeholder artwork drawn with Pillow.

Same inputs, same pixels: colours come from the prompt's hash (so one prompt keeps its
palette across tasks) and the composition from the seed (so each task looks different).
Every picture carries the prompt words and a version label so a person can tell them apart.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from imagetron_sandbox.determinism import Dice, stable_digest

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]
FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True, slots=True)
class Artwork:
    """What a picture is of: the prompt text, a seed and the model version label."""

    prompt: str
    seed: str
    version: str


@dataclass(frozen=True, slots=True)
class GridImages:
    """A 2x2 grid PNG and its four quadrants (1: top-left, 2: top-right, 3, 4: bottom)."""

    grid: bytes
    splits: tuple[bytes, bytes, bytes, bytes]


def render_grid(
    art: Artwork,
    size: tuple[int, int],
    *,
    bases: Sequence[bytes] = (),
    variation_strength: float = 0.5,
) -> GridImages:
    """Draw a grid of four tiles; with ``bases`` each tile is a variation of those images."""
    width, height = size
    tile_size = (width // 2, height // 2)
    grid = Image.new("RGB", (width, height))
    for index in range(4):
        base = _open(bases[index % len(bases)]) if bases else None
        tile = _render_tile(art, tile_size, index + 1, base, variation_strength)
        grid.paste(tile, ((index % 2) * tile_size[0], (index // 2) * tile_size[1]))
    splits = tuple(
        encode_png(
            grid.crop(
                (
                    (index % 2) * tile_size[0],
                    (index // 2) * tile_size[1],
                    (index % 2 + 1) * tile_size[0],
                    (index // 2 + 1) * tile_size[1],
                )
            )
        )
        for index in range(4)
    )
    return GridImages(encode_png(grid), (splits[0], splits[1], splits[2], splits[3]))


def render_upscale(split_png: bytes, art: Artwork, size: tuple[int, int], label: str) -> bytes:
    """Enlarge one split to ``size``, sharpen it and redraw its caption crisply."""
    image = _open(split_png).resize(size, Image.Resampling.LANCZOS)
    image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=2))
    _draw_caption(image, art, label, band_alpha=255)  # opaque: hides the enlarged old caption
    return encode_png(image)


def render_preview(grid_png: bytes, progress: int, long_side: int = 256) -> bytes:
    """A small blurred look at a grid, sharper as ``progress`` grows (intermediate image)."""
    image = _open(grid_png)
    image.thumbnail((long_side, long_side), Image.Resampling.BILINEAR)
    radius = max(0.5, (100 - progress) / 10)
    return encode_png(image.filter(ImageFilter.GaussianBlur(radius)))


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _open(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB")


def _render_tile(
    art: Artwork,
    size: tuple[int, int],
    index: int,
    base: Image.Image | None,
    variation_strength: float,
) -> Image.Image:
    dice = Dice("tile", art.prompt, art.seed, index)
    hue = _prompt_hue(art.prompt) + dice.uniform(-0.06, 0.06)
    tile = _gradient(size, _hsv(hue, 0.55, 0.95), _hsv(hue + 0.12, 0.75, 0.4), dice)
    _draw_glow(tile, hue, dice)
    _draw_hills(tile, hue, dice)
    _draw_shapes(tile, hue, dice)
    if base is not None:
        # Blurring the base washes out its caption while keeping its colours and layout.
        base = ImageOps.fit(base, size, Image.Resampling.BILINEAR)
        base = base.filter(ImageFilter.GaussianBlur(min(size) / 40))
        tile = Image.blend(base, tile, variation_strength)
    _draw_caption(tile, art, f"#{index}")
    return tile


def _prompt_hue(prompt: str) -> float:
    return stable_digest("hue", prompt.lower())[0] / 256


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB, dice: Dice) -> Image.Image:
    diagonal = math.ceil(math.hypot(*size))
    mask = Image.linear_gradient("L").resize((diagonal, diagonal), Image.Resampling.BILINEAR)
    mask = mask.rotate(dice.uniform(-35, 35), resample=Image.Resampling.BILINEAR)
    left, upper = (diagonal - size[0]) // 2, (diagonal - size[1]) // 2
    mask = mask.crop((left, upper, left + size[0], upper + size[1]))
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def _draw_glow(tile: Image.Image, hue: float, dice: Dice) -> None:
    width, height = tile.size
    radius = min(width, height) * dice.uniform(0.1, 0.2)
    centre_x, centre_y = width * dice.uniform(0.2, 0.8), height * dice.uniform(0.15, 0.45)
    layer = Image.new("RGBA", tile.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse(
        (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius),
        fill=(*_hsv(hue + 0.5, 0.35, 1.0), 235),
    )
    layer = layer.filter(ImageFilter.GaussianBlur(radius / 4))
    tile.paste(layer, (0, 0), layer)


def _draw_hills(tile: Image.Image, hue: float, dice: Dice) -> None:
    width, height = tile.size
    draw = ImageDraw.Draw(tile)
    for layer in range(dice.between(2, 3)):
        base = height * (0.55 + 0.13 * layer + dice.uniform(-0.04, 0.04))
        amplitude = height * dice.uniform(0.03, 0.09)
        frequency = dice.uniform(1.0, 3.5) * math.tau / width
        phase = dice.uniform(0, math.tau)
        points = [
            (x, base + amplitude * math.sin(frequency * x + phase))
            for x in range(0, width + 16, 16)
        ]
        colour = _hsv(hue + 0.04 * layer, 0.6, 0.45 - 0.1 * layer)
        draw.polygon([*points, (width, height), (0, height)], fill=colour)


def _draw_shapes(tile: Image.Image, hue: float, dice: Dice) -> None:
    width, height = tile.size
    layer = Image.new("RGBA", tile.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(dice.between(3, 6)):
        size = min(width, height) * dice.uniform(0.05, 0.14)
        x, y = width * dice.unit(), height * dice.uniform(0.2, 0.9)
        colour: RGBA = (*_hsv(hue + dice.pick((0.0, 0.33, 0.5)), 0.5, 0.95), 170)
        box = (x - size, y - size, x + size, y + size)
        match dice.between(0, 2):
            case 0:
                draw.ellipse(box, fill=colour)
            case 1:
                draw.rounded_rectangle(box, radius=size / 3, fill=colour)
            case _:
                draw.polygon(
                    [(x, y - size), (x + size, y + size), (x - size, y + size)], fill=colour
                )
    tile.paste(layer, (0, 0), layer)


def _draw_caption(image: Image.Image, art: Artwork, label: str, band_alpha: int = 110) -> None:
    """The prompt words in a translucent band at the top, the version label at the bottom."""
    width, height = image.size
    font = _font(max(10, height // 16))
    margin = max(4, height // 40)
    lines = _wrap(art.prompt or "(empty prompt)", font, width - 2 * margin, max_lines=3)
    line_height = font.getbbox("Ag")[3] + margin // 2
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, 0, width, line_height * len(lines) + margin), fill=(20, 20, 24, band_alpha))
    for row, line in enumerate(lines):
        draw.text((margin, margin // 2 + row * line_height), line, font=font, fill="white")
    small = _font(max(9, height // 22))
    tag = f"{label} · MJ {art.version} · sandbox"
    tag_width = draw.textlength(tag, font=small)
    tag_box = (width - tag_width - 2 * margin, height - small.getbbox("Ag")[3] - 2 * margin)
    draw.rectangle((*tag_box, width, height), fill=(20, 20, 24, max(130, band_alpha)))
    draw.text((tag_box[0] + margin, tag_box[1] + margin // 2), tag, font=small, fill="white")
    image.paste(overlay, (0, 0), overlay)


def _wrap(text: str, font: FontType, max_width: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) <= max_width or not current:
            current = candidate
            continue
        lines.append(current)
        current = word
        if len(lines) == max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
    elif len(lines) == max_lines and current:
        lines[-1] = lines[-1].rstrip(".,;") + " …"
    return lines


@lru_cache(maxsize=32)
def _font(size: int) -> FontType:
    return ImageFont.load_default(size=size)
