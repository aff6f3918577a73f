"""The jobs against fakes of their ports: metadata suggestions, the upload of a publication's
file and its batch's CSV. Each checks the state left, the events and jobs written with each
transition, what a redelivery does, and when a failure is retried or final."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from imagetron_contracts.models.publications import (
    Agency,
    BatchQuery,
    SuggestMetadataJob,
    UploadBatchCsvJob,
    UploadPublicationJob,
)
from imagetron_contracts.models.publications import PublicationStatus as S
from imagetron_contracts.streams import WORK_PUBLISHER_CSV, WORK_PUBLISHER_UPLOAD
from imagetron_platform.jobs import Delivery, RetryLater
from imagetron_publisher.app import delivery, publications, suggestions
from imagetron_publisher.app.ports import (
    AgencyAccount,
    AgencyRefused,
    AgencyUnavailable,
    StorageUnavailable,
    SuggestionRefused,
    SuggestionUnavailable,
    UnusableOriginal,
)
from imagetron_publisher.domain.publication import Publication

from .support import T0, batch, publication, stored_image

ORIGINAL = b"\x89PNG original bytes"


def first(message_id: str = "m-1", attempt: int = 1, of: int = 3) -> Delivery:
    return Delivery(message_id=message_id, attempt=attempt, max_attempts=of)


async def given(world: Any, status: S = S.queued, *, suggest: bool = False, **kw: Any) -> Any:
    """A publication of a stored image (its original in the bucket) in `status`, and its
    owner's account; returns the publication."""
    image = stored_image(uuid4())
    of = batch(image.owner_id, **kw)
    p = publication(image, of, suggest=suggest)
    if not suggest:
        p.status = status
    world.store.objects[image.storage_key] = ORIGINAL
    async with world.uow as uow:
        await uow.images.add(image)
        await uow.batches.add(of)
        await uow.publications.add(p)
        await uow.accounts.put(
            AgencyAccount(
                image.owner_id, Agency.adobe_stock, "ada", world.cipher.encrypt("right"), T0
            )
        )
        await uow.commit()
    return p


async def upload(world: Any, p: Publication, at: Delivery | None = None) -> None:
    deps = world.deps()
    await delivery.upload_publication(
        UploadPublicationJob(publication_id=p.id, owner_id=p.owner_id), at or first(),
        deps.new_uow(), deps.store, deps.renderer, deps.agencies, deps.cipher, deps.slots,
        deps.clock, deps.max_original_bytes,
    )  # fmt: skip


def now(world: Any, p: Publication) -> Publication:
    return world.uow.publication(p.id)


class TestUploadPublication:
    async def test_the_file_is_prepared_uploaded_once_and_the_batch_csv_queued(
        self, world: Any
    ) -> None:
        p = await given(world)
        await upload(world, p)
        done = now(world, p)
        assert done.status is S.uploaded
        assert done.attempts == 1
        assert done.file is not None
        assert world.store.objects[done.file.storage_key] == world.agency.files[p.remote_name]
        assert done.file.storage_key == f"{p.owner_id}/publications/{p.id}.jpg"
        assert world.uow.event_types() == ["publication.uploading", "publication.uploaded"]
        assert world.uow.subjects()[-1] == WORK_PUBLISHER_CSV
        assert world.slots.running(p.owner_id, Agency.adobe_stock) == 0

    async def test_a_redelivery_after_the_upload_changes_nothing(self, world: Any) -> None:
        p = await given(world)
        await upload(world, p)
        written = len(world.uow.outbox)
        await upload(world, p)
        assert len(world.uow.outbox) == written
        assert len(world.agency.uploads) == 1

    async def test_a_crash_after_the_upload_keeps_the_one_file_and_the_prepared_one(
        self, world: Any
    ) -> None:
        p = await given(world)
        await upload(world, p)
        # The worker died before `uploaded` was committed: as it was, uploading, file recorded.
        async with world.uow as uow:
            stuck = await uow.publications.get(p.owner_id, p.id)
            stuck.status = S.uploading
            await uow.publications.save(stuck)
            await uow.commit()
        await upload(world, p, first("m-2"))
        assert now(world, p).status is S.uploaded
        assert now(world, p).attempts == 2
        assert len(world.renderer.calls) == 1  # the prepared file was reused
        assert len(world.agency.files) == 1

    async def test_a_prepared_file_gone_from_the_bucket_is_rendered_again(self, world: Any) -> None:
        p = await given(world)
        await upload(world, p)
        prepared = now(world, p).file
        del world.store.objects[prepared.storage_key]
        async with world.uow as uow:
            again = await uow.publications.get(p.owner_id, p.id)
            again.status = S.queued
            await uow.publications.save(again)
            await uow.commit()
        await upload(world, p, first("m-2"))
        assert len(world.renderer.calls) == 2
        assert prepared.storage_key in world.store.objects

    async def test_a_refusal_fails_it_at_once_naming_the_cause(self, world: Any) -> None:
        p = await given(world)
        world.agency.failures.append(
            AgencyRefused("Login refused: check the password.", cause="login")
        )
        await upload(world, p)
        assert now(world, p).status is S.failed
        assert now(world, p).error == "Login refused: check the password."
        assert world.uow.event_types()[-1] == "publication.failed"

    async def test_a_transient_failure_is_retried_then_fails_when_deliveries_run_out(
        self, world: Any
    ) -> None:
        p = await given(world)
        world.agency.failures += [AgencyUnavailable("connection reset", cause="network")] * 2
        with pytest.raises(RetryLater, match="connection reset"):
            await upload(world, p, first(attempt=1, of=2))
        retried = now(world, p)
        assert (retried.status, retried.error) == (S.uploading, "Retrying: connection reset")
        assert world.uow.event_types()[-1] == "publication.updated"
        await upload(world, p, first(attempt=2, of=2))
        assert now(world, p).status is S.failed
        assert now(world, p).error == "Gave up after 2 attempts: connection reset"

    async def test_an_unreachable_bucket_is_retried(self, world: Any) -> None:
        p = await given(world)
        world.store.failures.append(StorageUnavailable("bucket down"))
        with pytest.raises(RetryLater, match="bucket down"):
            await upload(world, p)

    async def test_an_original_gone_from_the_bucket_fails_it(self, world: Any) -> None:
        p = await given(world)
        world.store.objects.clear()
        await upload(world, p)
        assert now(world, p).status is S.failed
        assert now(world, p).error == (
            f"The stored original of image {p.source.id} is gone from the bucket."
        )

    async def test_an_original_that_cannot_be_rendered_fails_it(self, world: Any) -> None:
        p = await given(world)
        world.renderer.failures.append(UnusableOriginal("not an image"))
        await upload(world, p)
        assert (now(world, p).status, now(world, p).error) == (S.failed, "not an image")

    async def test_a_prepared_file_too_large_blocks_it_with_the_finding(self, world: Any) -> None:
        p = await given(world)
        world.renderer.size = 46_000_000
        await upload(world, p)
        blocked = now(world, p)
        assert blocked.status is S.blocked
        assert blocked.file is None
        assert blocked.error == blocked.findings[0].message
        assert world.agency.uploads == []

    async def test_credentials_no_key_reads_fail_it(self, world: Any) -> None:
        p = await given(world)
        world.cipher.unreadable = True
        await upload(world, p)
        assert now(world, p).status is S.failed
        assert "set the account again" in now(world, p).error

    async def test_without_an_account_it_fails_saying_so(self, world: Any) -> None:
        p = await given(world)
        async with world.uow as uow:
            await uow.accounts.delete(p.owner_id, Agency.adobe_stock)
            await uow.commit()
        await upload(world, p)
        assert now(world, p).status is S.failed
        assert "no adobe_stock account" in now(world, p).error

    async def test_a_publication_no_longer_queued_is_left_alone(self, world: Any) -> None:
        p = await given(world, S.withdrawn)
        await upload(world, p)
        assert now(world, p).status is S.withdrawn
        assert world.uow.outbox == []

    async def test_a_busy_account_comes_back_soon_and_on_its_last_delivery_queues_anew(
        self, world: Any
    ) -> None:
        p = await given(world)
        with world.slots.hold(p.owner_id, Agency.adobe_stock):
            with pytest.raises(RetryLater) as retry:
                await upload(world, p)
            assert retry.value.delay == delivery.BUSY_RETRY_SECONDS
            await upload(world, p, first(attempt=3, of=3))
            await upload(world, p, first(attempt=3, of=3))  # redelivered: queued once
        assert now(world, p).status is S.queued  # busy is no failure
        assert world.uow.subjects() == [WORK_PUBLISHER_UPLOAD]

    async def test_the_csv_waits_for_the_rest_of_the_batch(self, world: Any) -> None:
        p = await given(world, size=2)
        sibling_image = stored_image(p.owner_id)
        async with world.uow as uow:
            await uow.images.add(sibling_image)
            of = await uow.batches.get(p.owner_id, p.batch_id)
            sibling = publication(sibling_image, of)
            sibling.status = S.queued
            await uow.publications.add(sibling)
            await uow.commit()
        await upload(world, p)
        assert WORK_PUBLISHER_CSV not in world.uow.subjects()
        world.store.objects[sibling_image.storage_key] = ORIGINAL
        await upload(world, sibling, first("m-2"))
        assert world.uow.subjects().count(WORK_PUBLISHER_CSV) == 1


async def upload_csv(world: Any, p: Publication, at: Delivery | None = None) -> None:
    deps = world.deps()
    await delivery.upload_batch_csv(
        UploadBatchCsvJob(batch_id=p.batch_id, owner_id=p.owner_id), at or first("csv-1"),
        deps.new_uow(), deps.agencies, deps.cipher, deps.clock,
    )  # fmt: skip


class TestUploadBatchCsv:
    async def test_the_uploaded_files_are_listed_and_each_told(self, world: Any) -> None:
        p = await given(world)
        await upload(world, p)
        world.clock.advance(10)
        await upload_csv(world, p)
        of = world.uow.batch(p.batch_id)
        assert (of.csv_name, of.csv_uploaded_at) == (of.csv_filename, world.clock.now)
        csv = world.agency.files[of.csv_filename].decode()
        assert csv.splitlines()[1].startswith(f"{p.remote_name},Ripe pear on linen,")
        assert world.agency.uploads[-1] == (of.csv_filename, True)  # replaces the last one
        assert world.uow.event_types()[-1] == "publication.csv_uploaded"
        await upload_csv(world, p)  # redelivered: uploaded again, told once
        assert world.uow.event_types().count("publication.csv_uploaded") == 1
        # The CSV's news is a change of the publication like the others: a newer version,
        # kept, so that the next event of the publication is newer still.
        versions = [m.payload["version"] for m in world.uow.outbox if "type" in m.payload]
        assert versions == sorted(set(versions)), versions
        assert now(world, p).version == versions[-1]

    async def test_the_downloaded_csv_lists_only_files_at_the_agency(self, world: Any) -> None:
        # A file prepared but refused (or withdrawn before upload) is not at the agency: a
        # row naming it makes the portal reject the CSV ("No uploaded file is named ...").
        p = await given(world, size=2)
        await upload(world, p)
        refused_image = stored_image(p.owner_id)
        world.store.objects[refused_image.storage_key] = ORIGINAL
        async with world.uow as uow:
            await uow.images.add(refused_image)
            refused = publication(refused_image, await uow.batches.get(p.owner_id, p.batch_id))
            refused.status = S.queued
            await uow.publications.add(refused)
            await uow.commit()
        world.agency.failures.append(AgencyRefused("Quota reached.", cause="quota"))
        await upload(world, refused, first("m-2"))
        assert now(world, refused).file is not None  # prepared, then refused
        query = BatchQuery(owner_id=p.owner_id, batch_id=p.batch_id)
        csv = await publications.batch_csv(query, world.uow)
        assert csv.rows == 1
        assert [row.split(",")[0] for row in csv.content.splitlines()[1:]] == [p.remote_name]

    async def test_nothing_uploaded_means_no_csv(self, world: Any) -> None:
        p = await given(world, S.failed)
        await upload_csv(world, p)
        assert world.agency.uploads == []

    async def test_an_agency_without_csvs_gets_none(self, world: Any) -> None:
        world.agency.takes_csv = False
        p = await given(world)
        await upload(world, p)
        assert WORK_PUBLISHER_CSV not in world.uow.subjects()
        await upload_csv(world, p)
        assert world.agency.uploads == [(p.remote_name, False)]

    async def test_unavailable_is_retried_and_given_up_on_the_last_delivery(
        self, world: Any
    ) -> None:
        p = await given(world)
        await upload(world, p)
        world.agency.failures += [AgencyUnavailable("timeout", cause="timeout")] * 2
        with pytest.raises(RetryLater, match="timeout"):
            await upload_csv(world, p, first("csv-1", attempt=1, of=2))
        await upload_csv(world, p, first("csv-1", attempt=2, of=2))
        assert world.uow.batch(p.batch_id).csv_name is None

    async def test_refused_is_not_retried(self, world: Any) -> None:
        p = await given(world)
        await upload(world, p)
        world.agency.failures.append(AgencyRefused("bad CSV", cause="refused"))
        await upload_csv(world, p)
        assert world.uow.batch(p.batch_id).csv_name is None


async def suggest(world: Any, p: Publication, at: Delivery | None = None) -> None:
    await suggestions.suggest_metadata(
        SuggestMetadataJob(publication_id=p.id, owner_id=p.owner_id), at or first("s-1"),
        world.uow, world.advisor, world.clock,
    )  # fmt: skip


class TestSuggestMetadata:
    async def test_the_suggestion_is_applied_and_linted(self, world: Any) -> None:
        p = await given(world, suggest=True)
        await suggest(world, p)
        ready = now(world, p)
        assert (ready.status, ready.metadata, ready.suggesting) == (
            S.ready,
            world.advisor.suggestion,
            False,
        )
        assert world.uow.event_types() == ["publication.ready"]
        await suggest(world, p)  # redelivered
        assert world.advisor.asked == [p.source.id]

    async def test_a_publication_edited_meanwhile_keeps_the_artists_metadata(
        self, world: Any
    ) -> None:
        p = await given(world, S.ready)
        await suggest(world, p)
        assert world.advisor.asked == []

    async def test_an_unreachable_advisor_is_retried_then_the_draft_says_why(
        self, world: Any
    ) -> None:
        p = await given(world, suggest=True)
        world.advisor.failures += [SuggestionUnavailable("prompts is down")] * 2
        with pytest.raises(RetryLater, match="prompts is down"):
            await suggest(world, p, first("s-1", attempt=1, of=2))
        await suggest(world, p, first("s-1", attempt=2, of=2))
        settled = now(world, p)
        assert settled.status is S.ready  # its first metadata stand
        assert settled.error == (
            "No metadata could be suggested: prompts is down (after 2 attempts). "
            "Edit it, or ask again."
        )

    async def test_a_refused_suggestion_is_final(self, world: Any) -> None:
        p = await given(world, suggest=True)
        world.advisor.failures.append(SuggestionRefused("The model refused."))
        await suggest(world, p)
        assert "The model refused." in now(world, p).error
