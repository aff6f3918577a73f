"""In-memory home of rendered PNGs, bounded by total size (oldest evicted first)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from imagetron_sandbox.faults.tokens import Overrides


@dataclass(frozen=True, slots=True)
class StoredImage:
    """PNG bytes plus the per-task fault overrides that apply when it is downloaded."""

    name: str
    png: bytes
    fault_overrides: Overrides = field(default_factory=dict)


class ImageStore:
    def __init__(self, max_bytes: int) -> None:
        self._images: OrderedDict[str, StoredImage] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0

    def put(self, image: StoredImage) -> None:
        self.discard(image.name)
        self._images[image.name] = image
        self._bytes += len(image.png)
        while self._bytes > self._max_bytes and len(self._images) > 1:
            _, evicted = self._images.popitem(last=False)
            self._bytes -= len(evicted.png)

    def get(self, name: str) -> StoredImage | None:
        return self._images.get(name)

    def discard(self, name: str) -> None:
        old = self._images.pop(name, None)
        if old is not None:
            self._bytes -= len(old.png)

    def __len__(self) -> int:
        return len(self._images)
