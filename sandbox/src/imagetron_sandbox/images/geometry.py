"""Aspect ratios and the pixel sizes derived from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RATIO = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")
MAX_RATIO = 8.0


@dataclass(frozen=True, slots=True)
class AspectRatio:
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> AspectRatio:
        """Parse ``"W:H"``; raises ``ValueError`` for nonsense or extreme ratios."""
        match = _RATIO.match(text)
        if match is None:
            raise ValueError(f"aspect ratio must look like '16:9', got {text!r}")
        width, height = int(match.group(1)), int(match.group(2))
        if width == 0 or height == 0:
            raise ValueError("aspect ratio sides must be positive")
        if max(width, height) / min(width, height) > MAX_RATIO:
            raise ValueError(f"aspect ratio {text!r} is more extreme than 1:{MAX_RATIO:g}")
        return cls(width, height)

    def __str__(self) -> str:
        return f"{self.width}:{self.height}"

    def size(self, long_side: int) -> tuple[int, int]:
        """Pixel size with the given long side; both sides even so a 2x2 split is exact."""
        if self.width >= self.height:
            short = long_side * self.height / self.width
            return _even(long_side), _even(short)
        short = long_side * self.width / self.height
        return _even(short), _even(long_side)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def scaled_to_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``size`` scaled so its longer side is ``long_side`` (aspect ratio kept)."""
    width, height = size
    factor = long_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))
