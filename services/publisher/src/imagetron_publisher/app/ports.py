"""What the publisher's handlers need from the outside world, as protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from imagetron_contracts.models.publications import Agency, PublicationStatus
from imagetron_platform.errors import Conflict
from imagetron_platform.pagination import PageKey
from imagetron_platform.ports import Transactional
from imagetron_publisher.domain.batch import Batch
from imagetron_publisher.domain.publication import Publication, StockMetadata, StoredImage


@dataclass(frozen=True)
class PublicationFilter:
    status: PublicationStatus | None = None
    agency: Agency | None = None
    batch_id: UUID | None = None
    image_id: UUID | None = None
    remote_name: str | None = None


class ImageRepository(Protocol):
    async def add(self, image: StoredImage) -> None:
        """Record a stored image; a second record of the same image changes nothing."""
        ...

    async def get(self, owner_id: UUID, image_id: UUID) -> StoredImage | None: ...

    async def get_many(self, owner_id: UUID, image_ids: Sequence[UUID]) -> list[StoredImage]:
        """The owner's images among `image_ids` (others' and unknown ones are left out)."""
        ...


class StalePublication(Conflict):
    """A save of a publication older than the stored one: another transaction announced a
    newer version since it was read. Nothing is written; read it again and retry."""

    def __init__(self, publication: Publication) -> None:
        super().__init__(
            f"Publication {publication.id} changed meanwhile: version {publication.version} "
            "is out of date; try again."
        )


class PublicationRepository(Protocol):
    async def add(self, publication: Publication) -> None: ...

    async def get(
        self, owner_id: UUID, publication_id: UUID, *, for_update: bool = False
    ) -> Publication | None: ...

    async def save(self, publication: Publication) -> None:
        """Write its state (never what it is made of: owner, batch, agency, image, creation);
        `StalePublication` if the stored version is newer than the publication's."""
        ...

    async def list_page(
        self, owner_id: UUID, *, where: PublicationFilter, after: PageKey | None, limit: int
    ) -> Sequence[Publication]:
        """Newest first, strictly after `after`."""
        ...

    async def delivery_backlog(self) -> tuple[int, datetime | None]:
        """Across owners: how many publications are queued or uploading, and since when the
        oldest of them has waited (its last change)."""
        ...

    async def in_batch(
        self, owner_id: UUID, batch_id: UUID, *, for_update: bool = False
    ) -> list[Publication]:
        """Every publication of the batch, oldest first."""
        ...


class BatchRepository(Protocol):
    async def add(self, batch: Batch) -> bool:
        """False, and nothing added, when a batch with its id exists (a request sent again
        names the same batch: `imagetron_platform.request_ids`)."""
        ...

    async def get(
        self, owner_id: UUID, batch_id: UUID, *, for_update: bool = False
    ) -> Batch | None: ...

    async def save(self, batch: Batch) -> None: ...

    async def counts(self, batch_ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
        """Publications per status, for each batch."""
        ...

    async def list_page(self, owner_id: UUID, *, after: PageKey | None, limit: int) -> list[Batch]:
        """Newest first, strictly after `after`."""
        ...


@dataclass(frozen=True)
class AgencyAccount:
    owner_id: UUID
    agency: Agency
    username: str
    #: The password, encrypted with the service's key (`CredentialCipher`).
    secret: bytes
    updated_at: datetime


class AccountRepository(Protocol):
    async def get(self, owner_id: UUID, agency: Agency) -> AgencyAccount | None: ...

    async def put(self, account: AgencyAccount) -> None: ...

    async def delete(self, owner_id: UUID, agency: Agency) -> bool: ...


class UnitOfWork(Transactional, Protocol):
    @property
    def images(self) -> ImageRepository: ...

    @property
    def publications(self) -> PublicationRepository: ...

    @property
    def batches(self) -> BatchRepository: ...

    @property
    def accounts(self) -> AccountRepository: ...


class CredentialCipher(Protocol):
    """Encrypts agency passwords at rest; the plain text never leaves the service."""

    def encrypt(self, password: str) -> bytes: ...

    def decrypt(self, secret: bytes) -> str: ...


class CredentialsUnreadable(Exception):
    """Stored credentials that no configured key decrypts (the key changed): permanent."""


class MetadataAdvisor(Protocol):
    """Suggests stock metadata for an image of a prompt (the prompts service's model)."""

    async def suggest(self, image: StoredImage) -> StockMetadata: ...


class SuggestionUnavailable(Exception):
    """The advisor could not be reached: worth trying again later."""


class SuggestionRefused(Exception):
    """The advisor answered without a usable suggestion (the model failed): say why."""


@dataclass(frozen=True)
class RenderedFile:
    """A submission file: JPEG bytes and what they measure."""

    data: bytes
    width: int
    height: int
    sha256: str


class FileRenderer(Protocol):
    async def render(
        self, original: bytes, *, enlarge: int, metadata: StockMetadata
    ) -> RenderedFile:
        """A JPEG in sRGB of `original` enlarged `enlarge` times, with the metadata
        embedded (XMP and IPTC). Raises `UnusableOriginal` for what cannot be rendered."""
        ...


class UnusableOriginal(Exception):
    """The stored original cannot be decoded or is too large to decode: permanent."""


class FileStore(Protocol):
    """The bucket: originals (read-only, the images service's) and prepared files."""

    async def get(self, key: str, *, max_bytes: int) -> bytes: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...


class StorageUnavailable(Exception):
    """The bucket could not be reached: transient."""


class ObjectMissing(Exception):
    """No object under that key."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class UploadResult(StrEnum):
    UPLOADED = "uploaded"
    ALREADY_THERE = "already_there"


class AgencyDelivery(Protocol):
    """One agency's upload channel (SFTP for Adobe Stock)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def takes_csv(self) -> bool:
        """Whether the agency reads a metadata CSV uploaded with the files."""
        ...

    async def upload(
        self, credentials: Credentials, name: str, data: bytes, *, replace: bool = False
    ) -> UploadResult:
        """Leave exactly one file `name` with `data` at the agency: written under a
        temporary name and renamed, so an interrupted upload never leaves a partial file
        under `name`; a file of the same size already there is kept unless `replace`.
        Raises `AgencyRefused` (permanent, e.g. a wrong password) or `AgencyUnavailable`
        (transient)."""
        ...


class AgencyError(Exception):
    """`cause` names the kind of failure for the metrics (login, network, no_space, ...)."""

    def __init__(self, reason: str, *, cause: str) -> None:
        super().__init__(reason)
        self.cause = cause


class AgencyRefused(AgencyError):
    """The agency refused in a way retrying cannot change (credentials, host key)."""


class AgencyUnavailable(AgencyError):
    """The agency could not take the file now (network, disconnect, full disk, slowness)."""


class AccountBusy(Exception):
    """The account already has as many uploads running as it may."""
