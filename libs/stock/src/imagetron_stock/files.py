"""The agencies' file rules (Adobe Stock): what a submission file must measure.

Adobe Stock takes JPEG in sRGB of 4 to 100 megapixels and at most 45 MB. The publisher
always renders a JPEG in sRGB, so format and colour space are never findings; size is, and
each finding says what to do (upscale, or enlarge when preparing).
"""

from __future__ import annotations

import math

from imagetron_contracts.models.prompts import StockFindingCode, StockFindingField
from imagetron_stock.rules import StockFinding

MIN_MEGAPIXELS = 4.0
MAX_MEGAPIXELS = 100.0
MAX_FILE_BYTES = 45_000_000
#: The enlargements the publisher offers when preparing (each side).
ENLARGEMENTS = (1, 2, 3, 4)


def megapixels(width: int, height: int, enlarge: int = 1) -> float:
    return width * enlarge * height * enlarge / 1_000_000


def enlargement_needed(width: int, height: int) -> int | None:
    """The smallest offered enlargement that brings an image to the minimum; None if none
    does (or if it is already big enough: then 1)."""
    for factor in ENLARGEMENTS:
        if megapixels(width, height, factor) >= MIN_MEGAPIXELS:
            return factor if megapixels(width, height, factor) <= MAX_MEGAPIXELS else None
    return None


def _file_finding(code: StockFindingCode, message: str) -> StockFinding:
    return StockFinding(
        code=code, field=StockFindingField.file_field, message=message, start=0, end=0, match=""
    )


def check_dimensions(width: int, height: int, enlarge: int = 1) -> list[StockFinding]:
    """The megapixel rule for an image of `width` x `height` enlarged `enlarge` times."""
    mp = megapixels(width, height, enlarge)
    shown = f"{math.floor(mp * 10) / 10:g} MP"
    if mp < MIN_MEGAPIXELS:
        needed = enlargement_needed(width, height)
        advice = (
            f"Upscale it, or enlarge it {needed}x when preparing."
            if needed is not None and needed > enlarge
            else "Upscale it first."
        )
        what = f"{shown} ({width}x{height}" + (f" enlarged {enlarge}x)" if enlarge > 1 else ")")
        return [
            _file_finding(
                StockFindingCode.too_few_megapixels,
                f"{what}: below Adobe Stock's {MIN_MEGAPIXELS:g} MP. {advice}",
            )
        ]
    if mp > MAX_MEGAPIXELS:
        advice = "Enlarge it less." if enlarge > 1 else "Use a smaller version."
        return [
            _file_finding(
                StockFindingCode.too_many_megapixels,
                f"{shown}: above Adobe Stock's {MAX_MEGAPIXELS:g} MP. {advice}",
            )
        ]
    return []


def check_file_size(size_bytes: int) -> list[StockFinding]:
    """The size rule for a prepared file."""
    if size_bytes <= MAX_FILE_BYTES:
        return []
    return [
        _file_finding(
            StockFindingCode.file_too_large,
            f"The prepared JPEG has {size_bytes / 1_000_000:.1f} MB; Adobe Stock takes at most "
            f"{MAX_FILE_BYTES / 1_000_000:g} MB. Enlarge it less.",
        )
    ]
