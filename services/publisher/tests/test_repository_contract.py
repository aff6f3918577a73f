"""The in-memory repositories of the unit tests (`tests/fakes.py`) and the SQL ones answer
the same questions the same way: each test runs against both, so a fake cannot drift from
what PostgreSQL does (owner scoping, idempotent adds, what a save writes, listing order,
filters and pages, per-status counts, the delivery backlog, the inbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.publications import Agency, PublicationStatus
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.pagination import PageKey
from imagetron_platform.testing import InMemoryDatabase
from imagetron_publisher.adapters.unit_of_work import PublisherUnitOfWork
from imagetron_publisher.app.ports import (
    AgencyAccount,
    PublicationFilter,
    StalePublication,
    UnitOfWork,
)
from imagetron_publisher.domain.batch import Batch
from imagetron_publisher.domain.publication import (
    MetadataEdit,
    PreparedFile,
    Publication,
    StoredImage,
)

from .fakes import FakeUnitOfWork, Tables
from .unit.support import T0, batch, publication, stored_image

pytestmark = pytest.mark.integration

S = PublicationStatus
NewUow = Callable[[], UnitOfWork]


@pytest.fixture(params=["fake", "sql"])
async def new_uow(request: pytest.FixtureRequest) -> AsyncIterator[NewUow]:
    if request.param == "fake":
        uow = FakeUnitOfWork(InMemoryDatabase(Tables()))
        yield lambda: uow
        return
    engine = make_engine(request.getfixturevalue("contract_dsn"))
    factory = make_session_factory(engine)
    try:
        yield lambda: PublisherUnitOfWork(factory)
    finally:
        await engine.dispose()


def state(p: Publication) -> dict[str, Any]:
    """Everything a publication holds (it compares by identity)."""
    return vars(p)


async def stored(
    new_uow: NewUow, *items: StoredImage | Batch | Publication | AgencyAccount
) -> None:
    async with new_uow() as uow:
        for item in items:
            if isinstance(item, StoredImage):
                await uow.images.add(item)
            elif isinstance(item, Batch):
                assert await uow.batches.add(item)
            elif isinstance(item, Publication):
                await uow.publications.add(item)
            else:
                await uow.accounts.put(item)
        await uow.commit()


async def saved(new_uow: NewUow, publication: Publication) -> None:
    async with new_uow() as uow:
        await uow.publications.save(publication)
        await uow.commit()


async def one_publication(new_uow: NewUow, owner: UUID | None = None, **kw: Any) -> Publication:
    image = stored_image(owner or uuid4())
    of = batch(image.owner_id)
    p = publication(image, of, **kw)
    await stored(new_uow, image, of, p)
    return p


class TestImages:
    async def test_a_second_record_of_an_image_changes_nothing(self, new_uow: NewUow) -> None:
        image = stored_image(uuid4())
        await stored(new_uow, image, replace(image, prompt_title="Another title"))
        async with new_uow() as uow:
            assert await uow.images.get(image.owner_id, image.id) == image

    async def test_images_are_the_owners_only(self, new_uow: NewUow) -> None:
        owner = uuid4()
        mine, other = stored_image(owner), stored_image(uuid4())
        await stored(new_uow, mine, other)
        async with new_uow() as uow:
            assert await uow.images.get(other.owner_id, mine.id) is None
            many = await uow.images.get_many(owner, [mine.id, other.id, uuid4(), mine.id])
        assert many == [mine]


class TestPublications:
    async def test_what_is_added_is_read_back_whole(self, new_uow: NewUow) -> None:
        p = await one_publication(new_uow, edit=MetadataEdit(title="Pear, ripe", category=3))
        assert p.findings  # blocked: its findings are read back too
        async with new_uow() as uow:
            read = await uow.publications.get(p.owner_id, p.id, for_update=True)
            assert await uow.publications.get(uuid4(), p.id) is None
        assert read is not None
        assert state(read) == state(p)

    async def test_a_save_writes_the_state_but_not_what_it_is_made_of(
        self, new_uow: NewUow
    ) -> None:
        p = await one_publication(new_uow)
        changed = p.snapshot()
        changed.status, changed.attempts, changed.error = S.failed, 2, "Gave up"
        changed.findings = ()
        changed.file = PreparedFile("a.jpg", "k/a.jpg", 2560, 1960, 4321, "1" * 64)
        changed.updated_at = changed.uploaded_at = T0 + timedelta(minutes=5)
        changed.version += 2
        changed.created_at = T0 + timedelta(days=1)  # never rewritten
        changed.owner_id = uuid4()  # never rewritten
        async with new_uow() as uow:
            await uow.publications.save(changed)
            await uow.commit()
        async with new_uow() as uow:
            read = await uow.publications.get(p.owner_id, p.id)
        assert read is not None
        expected = state(changed) | {"created_at": p.created_at, "owner_id": p.owner_id}
        assert state(read) == expected

    async def test_a_stale_save_cannot_take_a_publication_back(self, new_uow: NewUow) -> None:
        p = await one_publication(new_uow)
        newer, stale = p.snapshot(), p.snapshot()
        newer.withdraw(T0 + timedelta(minutes=1))  # announced: the next version
        stale.error = "written from an older read"
        await saved(new_uow, newer)
        with pytest.raises(StalePublication, match=f"version {p.version} is out of date"):
            await saved(new_uow, stale)
        async with new_uow() as uow:
            read = await uow.publications.get(p.owner_id, p.id)
        assert read is not None
        assert (read.status, read.version, read.error) == (S.withdrawn, p.version + 1, None)
        await saved(new_uow, read)  # the same version again: written (unannounced changes)

    async def test_listing_is_newest_first_filtered_and_paged(self, new_uow: NewUow) -> None:
        owner = uuid4()
        images = [stored_image(owner) for _ in range(4)]
        of, other = batch(owner), batch(owner)
        ps = [
            publication(image, of if i < 3 else other, at=T0 + timedelta(seconds=i % 2))
            for i, image in enumerate(images)
        ]
        ps[1].status = S.uploaded
        await stored(new_uow, *images, of, other, *ps)
        await one_publication(new_uow)  # another owner's: never listed
        newest_first = sorted(ps, key=lambda p: (p.created_at, p.id.int), reverse=True)

        async def ids(where: PublicationFilter, after: Publication | None = None) -> list[UUID]:
            key = PageKey(after.created_at, after.id) if after else None
            async with new_uow() as uow:
                rows = await uow.publications.list_page(owner, where=where, after=key, limit=10)
            return [p.id for p in rows]

        assert await ids(PublicationFilter()) == [p.id for p in newest_first]
        assert await ids(PublicationFilter(), after=newest_first[1]) == [
            p.id for p in newest_first[2:]
        ]
        assert await ids(PublicationFilter(status=S.uploaded)) == [ps[1].id]
        assert await ids(PublicationFilter(batch_id=other.id)) == [ps[3].id]
        assert await ids(PublicationFilter(image_id=images[2].id)) == [ps[2].id]
        assert await ids(PublicationFilter(remote_name=ps[0].remote_name)) == [ps[0].id]
        assert await ids(PublicationFilter(agency=Agency.adobe_stock, status=S.failed)) == []
        async with new_uow() as uow:
            page = await uow.publications.list_page(
                owner, where=PublicationFilter(), after=None, limit=2
            )
        assert [p.id for p in page] == [p.id for p in newest_first[:2]]

    async def test_a_batch_is_listed_oldest_first_for_its_owner(self, new_uow: NewUow) -> None:
        owner = uuid4()
        images = [stored_image(owner) for _ in range(3)]
        of = batch(owner)
        ps = [publication(i, of, at=T0 - timedelta(seconds=n)) for n, i in enumerate(images)]
        await stored(new_uow, *images, of, *ps)
        async with new_uow() as uow:
            listed = await uow.publications.in_batch(owner, of.id, for_update=True)
            assert await uow.publications.in_batch(uuid4(), of.id) == []
        assert [p.id for p in listed] == [p.id for p in reversed(ps)]

    async def test_the_delivery_backlog_counts_queued_and_uploading_since_the_oldest(
        self, new_uow: NewUow
    ) -> None:
        async with new_uow() as uow:
            before, _ = await uow.publications.delivery_backlog()
        queued = await one_publication(new_uow)
        uploading = await one_publication(new_uow)
        await one_publication(new_uow)  # ready: not in delivery
        oldest = T0 - timedelta(days=3650)  # older than anything another test leaves
        async with new_uow() as uow:
            for p, status, at in ((queued, S.queued, oldest), (uploading, S.uploading, T0)):
                p.status, p.updated_at = status, at
                await uow.publications.save(p)
            await uow.commit()
        async with new_uow() as uow:
            count, since = await uow.publications.delivery_backlog()
        assert (count - before, since) == (2, oldest)


class TestBatches:
    async def test_a_batch_id_is_added_once(self, new_uow: NewUow) -> None:
        of = batch(uuid4())
        await stored(new_uow, of)
        async with new_uow() as uow:
            assert not await uow.batches.add(replace(of, size=9))
            assert not await uow.batches.add(replace(of, owner_id=uuid4()))
            await uow.commit()
        async with new_uow() as uow:
            read = await uow.batches.get(of.owner_id, of.id, for_update=True)
            assert await uow.batches.get(uuid4(), of.id) is None
        assert read is not None
        assert vars(read) == vars(of)

    async def test_a_save_writes_the_csv_it_sent(self, new_uow: NewUow) -> None:
        of = batch(uuid4())
        await stored(new_uow, of)
        sent = replace(of, csv_name=of.csv_filename, csv_uploaded_at=T0, size=99)
        async with new_uow() as uow:
            await uow.batches.save(sent)
            await uow.commit()
        async with new_uow() as uow:
            read = await uow.batches.get(of.owner_id, of.id)
        assert read is not None
        assert vars(read) == vars(sent) | {"size": of.size}

    async def test_counts_are_per_batch_and_status(self, new_uow: NewUow) -> None:
        owner = uuid4()
        images = [stored_image(owner) for _ in range(3)]
        first, second, empty = batch(owner), batch(owner), batch(owner)
        ps = [publication(images[0], first), publication(images[1], first)]
        ps.append(publication(images[2], second, suggest=True))
        ps[1].status = S.queued
        await stored(new_uow, *images, first, second, empty, *ps)
        async with new_uow() as uow:
            counts = await uow.batches.counts([first.id, second.id, empty.id])
            assert await uow.batches.counts([]) == {}
        assert counts == {first.id: {"ready": 1, "queued": 1}, second.id: {"draft": 1}}

    async def test_listing_is_newest_first_and_paged(self, new_uow: NewUow) -> None:
        owner = uuid4()
        batches = [batch(owner, at=T0 + timedelta(seconds=n // 2)) for n in range(5)]
        await stored(new_uow, *batches, batch(uuid4()))
        newest_first = sorted(batches, key=lambda b: (b.created_at, b.id.int), reverse=True)
        async with new_uow() as uow:
            everything = await uow.batches.list_page(owner, after=None, limit=10)
            key = PageKey(newest_first[2].created_at, newest_first[2].id)
            rest = await uow.batches.list_page(owner, after=key, limit=1)
        assert [b.id for b in everything] == [b.id for b in newest_first]
        assert [b.id for b in rest] == [newest_first[3].id]


class TestAccounts:
    async def test_an_account_is_set_replaced_and_deleted(self, new_uow: NewUow) -> None:
        owner = uuid4()
        account = AgencyAccount(owner, Agency.adobe_stock, "ada", b"secret-1", T0)
        async with new_uow() as uow:
            assert await uow.accounts.get(owner, Agency.adobe_stock) is None
        await stored(new_uow, account)
        again = replace(account, username="ada2", secret=b"secret-2", updated_at=T0 + timedelta(1))
        await stored(new_uow, again)
        async with new_uow() as uow:
            assert await uow.accounts.get(owner, Agency.adobe_stock) == again
            assert await uow.accounts.delete(owner, Agency.adobe_stock)
            assert not await uow.accounts.delete(owner, Agency.adobe_stock)
            await uow.commit()
        async with new_uow() as uow:
            assert await uow.accounts.get(owner, Agency.adobe_stock) is None


class TestUnitOfWork:
    async def test_leaving_without_a_commit_keeps_nothing(self, new_uow: NewUow) -> None:
        image = stored_image(uuid4())
        async with new_uow() as uow:
            await uow.images.add(image)
            assert await uow.claim("publisher-test", str(image.id))
        async with new_uow() as uow:
            assert await uow.images.get(image.owner_id, image.id) is None
            assert await uow.claim("publisher-test", str(image.id))
            await uow.commit()
        async with new_uow() as uow:
            assert not await uow.claim("publisher-test", str(image.id))
            assert await uow.claim("publisher-other", str(image.id))
