"""The image entity: keys, persistence outcomes, and what cannot happen twice."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from imagetron_contracts.models.images import ImageKind
from imagetron_images.domain import Image, ImageEventType, ImageFile
from imagetron_platform.errors import Conflict

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OWNER = UUID("00000000-0000-4000-8000-000000000001")
TASK = UUID("00000000-0000-4000-8000-000000000002")
IMAGE = UUID("00000000-0000-4000-8000-000000000003")
FILE = ImageFile(
    content_type="image/png", extension="png", sha256="ab" * 32, size_bytes=10, width=4, height=3
)


def image(kind: ImageKind = ImageKind.version, index: int = 2) -> Image:
    return Image(
        id=IMAGE, owner_id=OWNER, task_id=TASK, prompt_id=OWNER, kind=kind, index=index,
        source_url="https://cdn.example/2.png", created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def test_storage_key_is_owner_task_kind_index_id() -> None:
    assert image().storage_key_for("png") == f"{OWNER}/{TASK}/version-2-{IMAGE}.png"


@pytest.mark.parametrize(
    ("kind", "index"),
    [(ImageKind.grid, 1), (ImageKind.version, 0), (ImageKind.version, 5), (ImageKind.upscale, 0)],
)
def test_index_fits_the_kind(kind: ImageKind, index: int) -> None:
    with pytest.raises(ValueError, match="index"):
        image(kind, index)


def test_persisted_records_the_file_and_says_so() -> None:
    img = image()
    change = img.mark_persisted(FILE, "key.png", NOW)
    assert change.type is ImageEventType.persisted
    assert change.image.is_persisted
    assert change.image.sha256 == FILE.sha256
    assert (img.storage_key, img.size_bytes, img.width, img.height) == ("key.png", 10, 4, 3)
    assert (img.attempts, img.error, img.persisted_at) == (1, None, NOW)


def test_a_retryable_failure_counts_the_attempt_without_an_event() -> None:
    img = image()
    img.record_retryable_failure("timed out", NOW)
    img.record_retryable_failure("timed out again", NOW)
    assert (img.attempts, img.error, img.is_persisted) == (2, "timed out again", False)
    change = img.mark_persisted(FILE, "key.png", NOW)
    assert change.image.attempts == 3
    assert change.image.error is None


def test_failed_records_the_reason_and_says_so() -> None:
    img = image()
    change = img.mark_failed("not an image", NOW)
    assert change.type is ImageEventType.failed
    assert (img.is_persisted, img.error, img.attempts) == (False, "not an image", 1)


def test_a_failed_image_can_be_persisted_by_a_later_retry() -> None:
    img = image()
    img.mark_failed("source timed out", NOW)
    img.mark_persisted(FILE, "key.png", NOW)
    assert img.is_persisted
    assert img.attempts == 2


@pytest.mark.parametrize(
    "action",
    [
        lambda img: img.mark_persisted(FILE, "other.png", NOW),
        lambda img: img.mark_failed("x", NOW),
        lambda img: img.record_retryable_failure("x", NOW),
    ],
    ids=["persist", "fail", "retryable"],
)
def test_a_stored_image_is_final(action) -> None:
    img = image()
    img.mark_persisted(FILE, "key.png", NOW)
    with pytest.raises(Conflict):
        action(img)
    assert img.storage_key == "key.png"
