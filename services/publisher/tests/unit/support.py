"""Builders the publisher's unit tests and its repository contract share (fixtures, the
faked ports among them, stay in conftest.py; tests import from here, never from a
conftest)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from imagetron_contracts.models.images import ImageKind
from imagetron_contracts.models.publications import Agency
from imagetron_publisher.domain.batch import Batch
from imagetron_publisher.domain.publication import MetadataEdit, Publication, StoredImage

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
#: Metadata no stock rule finds anything in: a publication with it is ready.
CLEAN = MetadataEdit(title="Ripe pear on linen", keywords=("pear", "fruit", "linen"), category=7)


def stored_image(owner_id: uuid.UUID, **changes: Any) -> StoredImage:
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "owner_id": owner_id, "task_id": uuid.uuid4(),
        "prompt_id": uuid.uuid4(), "kind": ImageKind.upscale, "index": 1, "width": 2560,
        "height": 1960, "size_bytes": 1234, "content_type": "image/png", "sha256": "0" * 64,
        "storage_key": f"{owner_id}/t/upscale-1.png", "prompt_text": "a ripe pear on linen",
        "prompt_title": "Ripe pear on linen", "persisted_at": T0,
    }  # fmt: skip
    return StoredImage(**(values | changes))


def batch(owner_id: uuid.UUID, *, at: datetime = T0, size: int = 1) -> Batch:
    return Batch(owner_id=owner_id, agency=Agency.adobe_stock, size=size, created_at=at)


def publication(
    image: StoredImage,
    in_batch: Batch,
    *,
    at: datetime = T0,
    edit: MetadataEdit = CLEAN,
    suggest: bool = False,
    publish_when_ready: bool = False,
) -> Publication:
    created, _ = Publication.create(
        owner_id=image.owner_id, batch_id=in_batch.id, agency=in_batch.agency, source=image,
        enlarge=1, edit=edit, suggest=suggest, publish_when_ready=publish_when_ready, now=at,
    )  # fmt: skip
    return created
