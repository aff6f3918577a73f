"""Images: each result of a task, persisted on its own."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID, uuid4

from imagetron_contracts.models.images import ImageKind
from imagetron_platform.errors import Conflict


@dataclass(frozen=True, kw_only=True)
class ImageFile:
    """What we learned about an image's bytes once they were downloaded and validated."""

    content_type: str
    extension: str
    sha256: str
    size_bytes: int
    width: int
    height: int


@dataclass(eq=False, kw_only=True)
class Image:
    """One image a task produced: the grid, one of its versions, or an upscale.

    It starts as a provider URL (`source_url`) and becomes ours once its bytes are stored;
    a failed attempt leaves it unpersisted with the reason, to be retried.
    """

    owner_id: UUID
    task_id: UUID
    prompt_id: UUID
    kind: ImageKind
    index: int
    source_url: str
    created_at: datetime
    updated_at: datetime
    id: UUID = field(default_factory=uuid4)
    is_persisted: bool = False
    storage_key: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    error: str | None = None
    attempts: int = 0
    persisted_at: datetime | None = None
    # Increases with every announced change (see GenerationTask.version).
    version: int = 1
    #: Where its thumbnail is stored (made with the image, or later for older images).
    thumbnail_key: str | None = None

    def __post_init__(self) -> None:
        valid = range(0, 1) if self.kind is ImageKind.grid else range(1, 5)
        if self.index not in valid:
            raise ValueError(f"a {self.kind} image has an index in {valid}, not {self.index}")

    def storage_key_for(self, extension: str) -> str:
        # Owner first: a bucket policy or a lifecycle rule can then work per owner.
        return f"{self.owner_id}/{self.task_id}/{self.kind}-{self.index}-{self.id}.{extension}"

    def thumbnail_key_for(self) -> str:
        return f"{self.owner_id}/{self.task_id}/{self.kind}-{self.index}-{self.id}.thumb.webp"

    def record_thumbnail(self, key: str, now: datetime) -> None:
        if not self.is_persisted:
            raise Conflict(f"Image {self.id} is not stored yet.")
        self.thumbnail_key = key
        self.updated_at = now

    def record_retryable_failure(self, error: str, now: datetime) -> None:
        """An attempt failed in a way that may pass later; no event until we give up."""
        self._ensure_not_persisted()
        self.attempts += 1
        self.error = error
        self.updated_at = now

    def mark_persisted(
        self,
        file: ImageFile,
        storage_key: str,
        now: datetime,
        thumbnail_key: str | None = None,
    ) -> ImagePersisted:
        self._ensure_not_persisted()
        self.attempts += 1
        self.is_persisted = True
        self.storage_key = storage_key
        self.thumbnail_key = thumbnail_key
        self.content_type = file.content_type
        self.size_bytes = file.size_bytes
        self.width = file.width
        self.height = file.height
        self.sha256 = file.sha256
        self.error = None
        self.persisted_at = now
        self.updated_at = now
        self.version += 1
        return ImagePersisted(image=copy.copy(self), occurred_at=now)

    def relocate(self, source_url: str, now: datetime) -> None:
        """Its provider now has it at `source_url` (the old URL expired)."""
        self._ensure_not_persisted()
        self.source_url = source_url
        self.updated_at = now

    def request_retry(self, now: datetime) -> None:
        """Someone asked for another attempt; refused once the image is stored."""
        self._ensure_not_persisted()
        self.updated_at = now

    def mark_failed(self, error: str, now: datetime) -> ImageFailed:
        self._ensure_not_persisted()
        self.attempts += 1
        self.error = error
        self.updated_at = now
        self.version += 1
        return ImageFailed(image=copy.copy(self), occurred_at=now)

    def _ensure_not_persisted(self) -> None:
        if self.is_persisted:
            raise Conflict(f"Image {self.id} is already stored.")


class ImageEventType(StrEnum):
    persisted = "image.persisted"
    failed = "image.failed"


@dataclass(frozen=True, kw_only=True)
class ImageChange:
    """Something happened to an image; `image` is a snapshot taken right after."""

    type: ClassVar[ImageEventType]
    image: Image
    occurred_at: datetime


@dataclass(frozen=True, kw_only=True)
class ImagePersisted(ImageChange):
    type: ClassVar[ImageEventType] = ImageEventType.persisted


@dataclass(frozen=True, kw_only=True)
class ImageFailed(ImageChange):
    type: ClassVar[ImageEventType] = ImageEventType.failed
