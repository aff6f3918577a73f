"""The file rules: megapixels after enlargement, and the prepared file's size."""

from __future__ import annotations

import pytest

from imagetron_contracts.models.prompts import StockFindingCode
from imagetron_stock.files import (
    MAX_FILE_BYTES,
    check_dimensions,
    check_file_size,
    enlargement_needed,
)


def test_five_megapixels_are_fine():
    assert check_dimensions(2560, 1960) == []


def test_three_megapixels_are_blocked_with_the_way_out():
    [finding] = check_dimensions(2000, 1500)
    assert finding.code is StockFindingCode.too_few_megapixels
    assert finding.message == (
        "3 MP (2000x1500): below Adobe Stock's 4 MP. Upscale it, or enlarge it 2x when preparing."
    )
    assert check_dimensions(2000, 1500, enlarge=2) == []


def test_a_small_grid_split_needs_more_than_twice():
    assert enlargement_needed(512, 512) == 4
    [finding] = check_dimensions(512, 512, enlarge=2)
    assert "enlarge it 4x" in finding.message
    assert enlargement_needed(100, 100) is None
    [tiny] = check_dimensions(100, 100)
    assert tiny.message.endswith("Upscale it first.")


@pytest.mark.parametrize(("size", "enlarge"), [((10_001, 10_000), 1), ((5_001, 5_000), 2)])
def test_over_a_hundred_megapixels_is_blocked(size, enlarge):
    [finding] = check_dimensions(*size, enlarge=enlarge)
    assert finding.code is StockFindingCode.too_many_megapixels


def test_forty_five_megabytes_is_the_limit():
    assert check_file_size(MAX_FILE_BYTES) == []
    [finding] = check_file_size(MAX_FILE_BYTES + 1)
    assert finding.code is StockFindingCode.file_too_large
