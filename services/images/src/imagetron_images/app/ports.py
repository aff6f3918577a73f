"""The ports the handlers need, and the errors the adapters behind them raise.

Adapters signal *transient* failures (may pass if tried again later) and *permanent* ones
(trying again cannot help) with the two error families below; handlers decide what that
means for the task or image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from imagetron_contracts.models.images import ImageKind, TaskCommand, TaskStatus
from imagetron_images.domain import (
    Capability,
    GenerationTask,
    Image,
    ImageFile,
    ProviderRequest,
    ProviderUpdate,
)
from imagetron_platform.pagination import PageKey
from imagetron_platform.ports import Transactional

# --- errors ---------------------------------------------------------------------------


class TransientError(Exception):
    """Failed now; the same call may succeed later (unreachable, overloaded, timed out)."""


class PermanentError(Exception):
    """Failed for good; repeating the same call cannot help."""


class ProviderUnavailable(TransientError):
    pass


class ProviderBusy(ProviderUnavailable):
    """The provider is at capacity (HTTP 429, "queue full"): it will take the task later,
    so the task waits instead of failing."""


class ProviderRejected(PermanentError):
    pass


class ProviderTaskNotFound(ProviderRejected):
    """The provider does not know this task (any more): it restarted, expired it, or never
    had it. Asking again will not bring it back."""


class MalformedProviderMessage(PermanentError):
    """A provider answer or callback we cannot understand."""


class DownloadFailed(TransientError):
    pass


class DownloadRefused(PermanentError):
    """Not fetched on purpose: a forbidden address, too large, or gone at the source."""


class SourceGone(DownloadRefused):
    """The URL answered 404 or 410: the provider may have moved the image (fresh URLs come
    with its task) or expired it."""


class InvalidImage(PermanentError):
    pass


class StorageUnavailable(TransientError):
    pass


class ImageWorkUnavailable(TransientError):
    """The processes that check and shrink images keep dying (out of memory, killed)."""


# --- persistence ----------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePageKey:
    """Where a page of images (newest task first, then by index) ends."""

    created_at: datetime
    task_id: UUID
    index: int


class TaskRepository(Protocol):
    async def add(self, task: GenerationTask) -> bool:
        """False, and nothing added, when a task with its id exists (a request sent again
        names the same task: `task_id_for`)."""
        ...

    async def get(self, owner_id: UUID, task_id: UUID) -> GenerationTask | None: ...

    async def get_for_update(self, task_id: UUID) -> GenerationTask | None:
        """Locks the task until the unit of work ends: callbacks for one task serialise."""
        ...

    async def update(self, task: GenerationTask) -> None: ...

    async def claim_due_for_poll(
        self,
        *,
        now: datetime,
        quiet_for: Mapping[tuple[str, TaskCommand], timedelta],
        default_quiet_for: timedelta,
        lease: timedelta,
        limit: int,
    ) -> Sequence[GenerationTask]:
        """Up to `limit` submitted or processing tasks due for a poll, oldest news first:
        `poll_after` has passed, or it is unset and the task has had no news for its
        provider and command's `quiet_for` (else `default_quiet_for`). Each is marked
        reconciled at `now` with `poll_after = now + lease`, so other replicas pass over it
        until then. Rows another transaction holds are skipped."""
        ...

    async def renew_poll_claim(
        self, task_id: UUID, *, claimed_at: datetime, until: datetime
    ) -> bool:
        """Extends the claim made at `claimed_at` (`reconciled_at`) to `until` (`poll_after`);
        False, and nothing changed, when the task is no longer claimed so (another replica
        claimed it since) or no longer submitted or processing."""
        ...

    async def lock_overdue(self, now: datetime, limit: int) -> Sequence[GenerationTask]:
        """Up to `limit` unfinished tasks past their deadline that hold a slot, locked until
        the unit of work ends; rows another transaction holds are skipped."""
        ...

    async def typical_durations(
        self, since: datetime, quantile: float
    ) -> Mapping[tuple[str, TaskCommand], timedelta]:
        """From acceptance to completion, the `quantile` of the durations of the tasks
        completed since `since`, per provider and command (pairs with a few samples only)."""
        ...

    async def lock_provider(self, provider: str) -> None:
        """Serialise dispatching for `provider` until the unit of work ends."""
        ...

    async def count_in_flight(self, provider: str) -> int:
        """The provider's tasks that take a slot (see GenerationTask.takes_a_slot)."""
        ...

    async def next_waiting(self, provider: str, limit: int) -> Sequence[GenerationTask]:
        """Up to `limit` of the provider's tasks waiting for a slot, in fair-share order
        (app.dispatch), locked; rows another transaction holds (e.g. being cancelled) are
        skipped."""
        ...

    async def queue_position(self, task: GenerationTask) -> int:
        """1 + how many of its provider's waiting tasks are ahead of `task` in fair-share
        order (app.dispatch)."""
        ...

    async def count_by_state(self) -> tuple[dict[tuple[str, TaskStatus], int], dict[str, int]]:
        """Every owner's tasks by (provider, status), and the waiting ones by provider."""
        ...

    async def list(
        self,
        owner_id: UUID,
        *,
        prompt_id: UUID | None,
        status: TaskStatus | None,
        after: PageKey | None,
        limit: int,
    ) -> Sequence[GenerationTask]: ...


class ImageRepository(Protocol):
    async def count_by_state(self) -> dict[str, int]:
        """Every owner's images: stored, failed (not stored, with an error) or pending."""
        ...

    async def add(self, images: Sequence[Image]) -> None: ...

    async def get(self, owner_id: UUID, image_id: UUID) -> Image | None: ...

    async def get_for_update(self, owner_id: UUID, image_id: UUID) -> Image | None: ...

    async def update(self, image: Image) -> None: ...

    async def list(
        self,
        owner_id: UUID,
        *,
        task_id: UUID | None,
        prompt_id: UUID | None,
        kind: ImageKind | None,
        is_persisted: bool | None = None,
        after: ImagePageKey | None,
        limit: int,
    ) -> Sequence[Image]: ...


class UnitOfWork(Transactional, Protocol):
    """The images service's transaction and the repositories it opens."""

    @property
    def tasks(self) -> TaskRepository: ...

    @property
    def images(self) -> ImageRepository: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


# --- the outside world ----------------------------------------------------------------


class PromptLedger(Protocol):
    """The prompts service's record of the generations running on each prompt."""

    async def reserve(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
        """Hold a generation on the prompt for the task about to be created, so that the
        prompt cannot be deleted before the task's `created` event reaches it. Raises the
        prompts service's NotFound (unknown prompt) or Conflict (archived), or
        ServiceUnavailable / ServiceTimeout when it does not answer."""
        ...

    async def release(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
        """Let go of a reservation whose task was not created (best effort: an unanswered
        release expires on the prompts side)."""
        ...


class ImageProvider(Protocol):
    """A third-party generator behind one of our adapters."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What it can do; a command outside this set is refused before any call."""
        ...

    async def submit(self, request: ProviderRequest) -> str:
        """Start the work; returns the provider's task id. Raises ProviderUnavailable or
        ProviderRejected."""
        ...

    async def cancel(self, provider_task_id: str) -> None:
        """Stop a task it accepted (only called with Capability.cancel). Raises
        ProviderUnavailable, or ProviderRejected when the task can no longer be stopped."""
        ...

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        """The provider's current view of its task (reconciliation when callbacks are lost)."""
        ...

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        """Raises MalformedProviderMessage."""
        ...


class ImageDownloader(Protocol):
    async def download(self, url: str) -> bytes:
        """Raises DownloadFailed (transient) or DownloadRefused."""
        ...


class DownloadSlots(Protocol):
    def hold(self, owner_id: UUID, host: str | None) -> AbstractAsyncContextManager[None]:
        """Wait for one of the slots persisting images (fair between owners and remote
        hosts; `host` is `host:port`, None for our own staging bucket) and hold it for the
        block. Raises DownloadFailed when none comes free in time."""
        ...


@dataclass(frozen=True)
class InspectedImage:
    """An image we accept, and its thumbnail made from the same decode (None if it could not
    be made, with why: the image is kept, and its thumbnail made when first asked for)."""

    file: ImageFile
    thumbnail: bytes | None
    thumbnail_problem: str | None = None


class ImageInspector(Protocol):
    async def inspect(self, data: bytes) -> InspectedImage:
        """Raises InvalidImage unless `data` is an image we accept."""
        ...


class Thumbnailer(Protocol):
    async def thumbnail(self, data: bytes) -> bytes:
        """A small WebP of the image in `data`. Raises InvalidImage."""
        ...


class ImageStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Raises StorageUnavailable."""
        ...

    async def get(self, key: str) -> bytes:
        """Raises StorageUnavailable."""
        ...

    async def exists(self, key: str) -> bool:
        """Raises StorageUnavailable."""
        ...

    async def remove(self, key: str) -> None:
        """Idempotent (no object under the key is no error); raises StorageUnavailable."""
        ...

    def content_url(self, key: str) -> str:
        """A short-lived URL a browser can GET the object from."""
        ...
