"""In-memory fakes of the publisher's ports. The unit of work and its repositories are held
to the SQL repositories' behaviour by test_repository_contract.py; the others (bucket,
renderer, agency, cipher, advisor, clock) answer from a script and record what they were
asked."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from imagetron_contracts.models.publications import Agency, PublicationStatus
from imagetron_platform.pagination import PageKey
from imagetron_platform.testing import (
    InMemoryDatabase,
    InMemoryUnitOfWork,
    insert_once,
    select_owned,
)
from imagetron_publisher.app.dependencies import Dependencies
from imagetron_publisher.app.ports import (
    AgencyAccount,
    Credentials,
    CredentialsUnreadable,
    ObjectMissing,
    PublicationFilter,
    RenderedFile,
    StalePublication,
    UnusableOriginal,
    UploadResult,
)
from imagetron_publisher.app.slots import AccountSlots
from imagetron_publisher.domain.batch import Batch
from imagetron_publisher.domain.publication import Publication, StockMetadata, StoredImage

IN_DELIVERY = (PublicationStatus.queued, PublicationStatus.uploading)


@dataclass
class Tables:
    """What the service's tables hold (the platform's database keeps the outbox and inbox)."""

    images: dict[UUID, StoredImage] = field(default_factory=dict)
    publications: dict[UUID, Publication] = field(default_factory=dict)
    batches: dict[UUID, Batch] = field(default_factory=dict)
    accounts: dict[tuple[UUID, Agency], AgencyAccount] = field(default_factory=dict)


def _page_key(key: PageKey) -> tuple[datetime, int]:
    return (key.created_at, key.id.int)


class FakeImageRepository:
    def __init__(self, state: Tables) -> None:
        self._state = state

    async def add(self, image: StoredImage) -> None:
        self._state.images.setdefault(image.id, image)

    async def get(self, owner_id: UUID, image_id: UUID) -> StoredImage | None:
        return select_owned(self._state.images, image_id, owner_id)

    async def get_many(self, owner_id: UUID, image_ids: Sequence[UUID]) -> list[StoredImage]:
        found = (self._state.images.get(i) for i in dict.fromkeys(image_ids))
        return [i for i in found if i is not None and i.owner_id == owner_id]


class FakePublicationRepository:
    def __init__(self, state: Tables) -> None:
        self._state = state

    def _read(self, publication: Publication) -> Publication:
        # As the SQL join does: the source is the stored image's row.
        return replace(publication, source=self._state.images[publication.source.id])

    async def add(self, publication: Publication) -> None:
        # What the table's keys and foreign keys refuse.
        assert publication.id not in self._state.publications, "duplicate publication id"
        assert publication.source.id in self._state.images, "no such image"
        assert publication.batch_id in self._state.batches, "no such batch"
        self._state.publications[publication.id] = copy.copy(publication)

    async def get(
        self, owner_id: UUID, publication_id: UUID, *, for_update: bool = False
    ) -> Publication | None:
        found = select_owned(self._state.publications, publication_id, owner_id)
        return None if found is None else self._read(found)

    async def save(self, publication: Publication) -> None:
        # Like the UPDATE: what a publication is made of (owner, batch, agency, image,
        # creation) never changes; the rest is written as it is.
        stored = self._state.publications[publication.id]
        if publication.version < stored.version:
            raise StalePublication(publication)
        self._state.publications[publication.id] = replace(
            publication,
            owner_id=stored.owner_id,
            batch_id=stored.batch_id,
            agency=stored.agency,
            source=stored.source,
            created_at=stored.created_at,
        )

    async def list_page(
        self, owner_id: UUID, *, where: PublicationFilter, after: PageKey | None, limit: int
    ) -> Sequence[Publication]:
        def wanted(p: Publication) -> bool:
            return (
                p.owner_id == owner_id
                and (where.status is None or p.status is where.status)
                and (where.agency is None or p.agency is where.agency)
                and (where.batch_id is None or p.batch_id == where.batch_id)
                and (where.image_id is None or p.source.id == where.image_id)
                and (where.remote_name is None or p.remote_name == where.remote_name)
                and (after is None or _key(p) < _page_key(after))
            )

        found = sorted(filter(wanted, self._state.publications.values()), key=_key, reverse=True)
        return [self._read(p) for p in found[:limit]]

    async def delivery_backlog(self) -> tuple[int, datetime | None]:
        waiting = [
            p.updated_at for p in self._state.publications.values() if p.status in IN_DELIVERY
        ]
        return len(waiting), min(waiting, default=None)

    async def in_batch(
        self, owner_id: UUID, batch_id: UUID, *, for_update: bool = False
    ) -> list[Publication]:
        found = [
            p
            for p in self._state.publications.values()
            if p.owner_id == owner_id and p.batch_id == batch_id
        ]
        return [self._read(p) for p in sorted(found, key=_key)]


def _key(item: Publication | Batch) -> tuple[datetime, int]:
    return (item.created_at, item.id.int)


class FakeBatchRepository:
    def __init__(self, state: Tables) -> None:
        self._state = state

    async def add(self, batch: Batch) -> bool:
        return insert_once(self._state.batches, batch.id, batch)

    async def get(
        self, owner_id: UUID, batch_id: UUID, *, for_update: bool = False
    ) -> Batch | None:
        return select_owned(self._state.batches, batch_id, owner_id)

    async def save(self, batch: Batch) -> None:
        stored = self._state.batches[batch.id]
        stored.csv_name, stored.csv_uploaded_at = batch.csv_name, batch.csv_uploaded_at

    async def counts(self, batch_ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
        counts: dict[UUID, dict[str, int]] = {}
        for p in self._state.publications.values():
            if p.batch_id in batch_ids:
                of_batch = counts.setdefault(p.batch_id, {})
                of_batch[p.status.value] = of_batch.get(p.status.value, 0) + 1
        return counts

    async def list_page(self, owner_id: UUID, *, after: PageKey | None, limit: int) -> list[Batch]:
        found = [
            b
            for b in self._state.batches.values()
            if b.owner_id == owner_id and (after is None or _key(b) < _page_key(after))
        ]
        found.sort(key=_key, reverse=True)
        return [copy.copy(b) for b in found[:limit]]


class FakeAccountRepository:
    def __init__(self, state: Tables) -> None:
        self._state = state

    async def get(self, owner_id: UUID, agency: Agency) -> AgencyAccount | None:
        return self._state.accounts.get((owner_id, agency))

    async def put(self, account: AgencyAccount) -> None:
        self._state.accounts[(account.owner_id, account.agency)] = account

    async def delete(self, owner_id: UUID, agency: Agency) -> bool:
        return self._state.accounts.pop((owner_id, agency), None) is not None


class FakeUnitOfWork(InMemoryUnitOfWork[Tables]):
    """The platform's in-memory transaction, outbox and inbox, plus our repositories."""

    images: FakeImageRepository
    publications: FakePublicationRepository
    batches: FakeBatchRepository
    accounts: FakeAccountRepository

    def open_repositories(self, state: Tables) -> None:
        self.images = FakeImageRepository(state)
        self.publications = FakePublicationRepository(state)
        self.batches = FakeBatchRepository(state)
        self.accounts = FakeAccountRepository(state)

    # What tests look at, besides the platform's committed state, outbox and inbox.

    def event_types(self) -> list[str]:
        """The publication events' types, in the order they were written."""
        return [m.payload["type"] for m in self.outbox if "type" in m.payload]

    def publication(self, publication_id: UUID) -> Publication:
        return self.committed.publications[publication_id]

    def batch(self, batch_id: UUID) -> Batch:
        return self.committed.batches[batch_id]


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime = datetime(2026, 12, 1, 9, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class FakeFileStore:
    """The bucket: objects by key; `failures` are raised first, one a call."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.failures: list[Exception] = []
        self.reads: list[str] = []

    async def get(self, key: str, *, max_bytes: int) -> bytes:
        self.reads.append(key)
        if self.failures:
            raise self.failures.pop(0)
        if key not in self.objects:
            raise ObjectMissing(key)
        data = self.objects[key]
        if len(data) > max_bytes:  # as S3FileStore: more than the caller takes
            raise UnusableOriginal(f"{key} is larger than {max_bytes} bytes")
        return data

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.objects[key] = data


class FakeRenderer:
    """Renders `original` as `size` bytes (its first bytes, then padding); records what it
    was asked; `failures` are raised first."""

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self.calls: list[tuple[bytes, int, StockMetadata]] = []
        self.failures: list[Exception] = []

    async def render(
        self, original: bytes, *, enlarge: int, metadata: StockMetadata
    ) -> RenderedFile:
        self.calls.append((original, enlarge, metadata))
        if self.failures:
            raise self.failures.pop(0)
        data = (original + b"\0" * self.size)[: self.size]
        return RenderedFile(
            data=data,
            width=2560 * enlarge,
            height=1960 * enlarge,
            sha256=hashlib.sha256(data).hexdigest(),
        )


class FakeAgency:
    """One agency's upload channel: its files by name; `failures` are raised, one an upload,
    before anything is written."""

    host = "sftp.agency.example"
    port = 22

    def __init__(self, *, takes_csv: bool = True, password: str = "right") -> None:
        self.takes_csv = takes_csv
        self.password = password
        self.files: dict[str, bytes] = {}
        self.uploads: list[tuple[str, bool]] = []
        self.failures: list[Exception] = []

    async def upload(
        self, credentials: Credentials, name: str, data: bytes, *, replace: bool = False
    ) -> UploadResult:
        self.uploads.append((name, replace))
        if self.failures:
            raise self.failures.pop(0)
        assert credentials.password == self.password, "decrypted password expected"
        if not replace and len(self.files.get(name, b"")) == len(data):
            return UploadResult.ALREADY_THERE
        self.files[name] = data
        return UploadResult.UPLOADED


class FakeCipher:
    """Not encryption, but never the plain text either; `unreadable` plays a changed key."""

    def __init__(self) -> None:
        self.unreadable = False

    def encrypt(self, password: str) -> bytes:
        return b"sealed:" + password[::-1].encode()

    def decrypt(self, secret: bytes) -> str:
        if self.unreadable:
            raise CredentialsUnreadable("no configured key reads it: set the account again")
        return secret.removeprefix(b"sealed:").decode()[::-1]


class FakeAdvisor:
    """Answers `suggestion`, or raises the next of `failures`."""

    def __init__(self, suggestion: StockMetadata) -> None:
        self.suggestion = suggestion
        self.failures: list[Exception] = []
        self.asked: list[UUID] = []

    async def suggest(self, image: StoredImage) -> StockMetadata:
        self.asked.append(image.id)
        if self.failures:
            raise self.failures.pop(0)
        return self.suggestion


SUGGESTION = StockMetadata(
    title="Pear on a linen cloth", keywords=("pear", "fruit", "still life"), category=7
)


@dataclass
class World:
    """Every port of the publisher, faked; `deps()` wires them as bootstrap does."""

    uow: FakeUnitOfWork = field(default_factory=lambda: FakeUnitOfWork(InMemoryDatabase(Tables())))
    clock: FakeClock = field(default_factory=FakeClock)
    cipher: FakeCipher = field(default_factory=FakeCipher)
    advisor: FakeAdvisor = field(default_factory=lambda: FakeAdvisor(SUGGESTION))
    renderer: FakeRenderer = field(default_factory=FakeRenderer)
    store: FakeFileStore = field(default_factory=FakeFileStore)
    agency: FakeAgency = field(default_factory=FakeAgency)
    slots: AccountSlots = field(default_factory=lambda: AccountSlots(per_account=1))

    def deps(self) -> Dependencies:
        return Dependencies(
            new_uow=lambda: self.uow,
            clock=self.clock,
            cipher=self.cipher,
            advisor=self.advisor,
            renderer=self.renderer,
            store=self.store,
            agencies={Agency.adobe_stock: self.agency},
            slots=self.slots,
            max_original_bytes=1_000_000,
        )
