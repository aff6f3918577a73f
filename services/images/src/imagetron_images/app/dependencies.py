from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from imagetron_images.app.dispatch import Slots
from imagetron_images.app.ports import (
    DownloadSlots,
    ImageDownloader,
    ImageInspector,
    ImageProvider,
    ImageStore,
    PromptLedger,
    Thumbnailer,
    UnitOfWork,
)


@dataclass(frozen=True, kw_only=True)
class Dependencies:
    """The adapters behind the ports: built once by bootstrap, shared by every handler."""

    # A fresh unit of work per message: one holds one session and cannot be shared by
    # handlers running concurrently.
    new_uow: Callable[[], UnitOfWork]
    providers: Mapping[str, ImageProvider]
    default_provider: str
    downloader: ImageDownloader
    # Persisting images: at most so many at once, shared fairly between owners and hosts.
    download_slots: DownloadSlots
    inspector: ImageInspector
    store: ImageStore
    thumbnailer: Thumbnailer
    # Reserves a generation on its prompt before a task is created.
    prompt_ledger: PromptLedger
    # Tasks each provider account may have in flight at once, and their deadlines.
    slots: Slots = field(default_factory=Slots)
