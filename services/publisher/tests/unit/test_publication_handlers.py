"""The publication, batch, account and image use cases against fakes of their ports: one
class per use case. Each checks the state it leaves, the events written with it (the
outbox of the same unit of work) and the errors a caller sees."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.images import Image, ImageEvent, ImageKind
from imagetron_contracts.models.publications import (
    Agency,
    AgencyAccountQuery,
    BatchQuery,
    CreatePublicationsCommand,
    FileType,
    ListBatchesQuery,
    ListPublicationsQuery,
    MetadataChanges,
    PortalStatus,
    PortalStatusCommand,
    PublicationQuery,
    ReadinessQuery,
    SetAgencyAccountCommand,
    UpdatePublicationCommand,
)
from imagetron_contracts.models.publications import PublicationStatus as S
from imagetron_contracts.streams import WORK_PUBLISHER_SUGGEST, WORK_PUBLISHER_UPLOAD
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound
from imagetron_publisher.app import accounts, images, publications
from imagetron_publisher.app.images import ImageEventOutcome
from imagetron_publisher.app.ports import AgencyAccount
from imagetron_publisher.domain.publication import PreparedFile

from .support import T0, stored_image

GOOD = MetadataChanges(title="Ripe pear on linen", keywords=["pear", "fruit"], category=7)


async def seed(world: Any, *items: Any) -> None:
    async with world.uow as uow:
        for item in items:
            if isinstance(item, AgencyAccount):
                await uow.accounts.put(item)
            else:
                await uow.images.add(item)
        await uow.commit()


def account(owner: UUID, password: str = "right") -> AgencyAccount:
    return AgencyAccount(owner, Agency.adobe_stock, "ada", b"sealed:" + password[::-1].encode(), T0)


async def create(world: Any, owner: UUID, *image_ids: UUID, **kw: Any) -> Any:
    kw = {"metadata": GOOD, "suggest_metadata": False} | kw
    cmd = CreatePublicationsCommand(owner_id=owner, image_ids=list(image_ids), **kw)
    return await publications.create_publications(cmd, world.uow, world.clock)


async def one_ready(world: Any, owner: UUID | None = None, **kw: Any) -> Any:
    image = stored_image(owner or uuid4())
    await seed(world, image)
    return (await create(world, image.owner_id, image.id, **kw)).items[0]


def query(p: Any) -> PublicationQuery:
    return PublicationQuery(owner_id=p.owner_id, publication_id=p.id)


class TestCreatePublications:
    async def test_each_stored_image_gets_a_publication_and_unknown_ones_are_listed(
        self, world: Any
    ) -> None:
        owner = uuid4()
        mine, theirs = stored_image(owner), stored_image(uuid4())
        await seed(world, mine, theirs)
        missing = uuid4()
        created = await create(world, owner, mine.id, theirs.id, missing, mine.id)
        assert [p.source.image_id for p in created.items] == [mine.id]
        assert [(e.image_id, e.status) for e in created.errors] == [
            (theirs.id, 404),
            (missing, 404),
        ]
        assert "not yours, or not stored yet" in created.errors[0].detail
        assert created.batch.size == 1
        assert created.batch.counts == {"ready": 1}
        assert world.uow.event_types() == ["publication.created"]

    async def test_successive_events_of_a_publication_carry_increasing_versions(
        self, world: Any
    ) -> None:
        owner = uuid4()
        await seed(world, account(owner))
        p = await one_ready(world, owner, publish_when_ready=True)  # created, queued
        await publications.withdraw_publication(query(p), world.uow, world.clock)
        events = [m.payload for m in world.uow.outbox if "type" in m.payload]
        assert [e["type"] for e in events] == [
            "publication.created",
            "publication.queued",
            "publication.withdrawn",
        ]
        assert [e["version"] for e in events] == [1, 2, 3]
        assert world.uow.publication(p.id).version == 3

    async def test_none_stored_is_a_404_and_writes_nothing(self, world: Any) -> None:
        with pytest.raises(NotFound, match="None of these images is stored"):
            await create(world, uuid4(), uuid4())
        assert world.uow.commits == 0

    async def test_a_suggestion_is_asked_for_and_the_publication_waits_as_draft(
        self, world: Any
    ) -> None:
        p = await one_ready(world, suggest_metadata=True)
        assert p.status is S.draft
        assert world.uow.subjects()[-1] == WORK_PUBLISHER_SUGGEST
        assert world.uow.outbox[-1].payload == {
            "publication_id": str(p.id),
            "owner_id": str(p.owner_id),
        }

    async def test_publish_when_ready_queues_the_upload_with_the_creation(self, world: Any) -> None:
        p = await one_ready(world, publish_when_ready=True)
        assert p.status is S.queued
        assert world.uow.event_types() == ["publication.created", "publication.queued"]
        assert world.uow.subjects()[-1] == WORK_PUBLISHER_UPLOAD

    async def test_sent_again_it_answers_what_the_first_attempt_created(self, world: Any) -> None:
        owner = uuid4()
        first_image, second_image = stored_image(owner), stored_image(owner)
        await seed(world, first_image, second_image)
        first = await create(world, owner, first_image.id, request_id="req-1")
        written = len(world.uow.outbox)
        again = await create(world, owner, second_image.id, first_image.id, request_id="req-1")
        assert again.batch.id == first.batch.id
        assert [p.id for p in again.items] == [first.items[0].id]
        assert [e.image_id for e in again.errors] == [second_image.id]
        assert len(world.uow.outbox) == written  # no second event
        assert len(world.uow.committed.publications) == 1
        other = await create(world, owner, first_image.id, request_id="req-2")
        assert other.batch.id != first.batch.id

    async def test_more_images_than_a_batch_takes_is_refused(self, world: Any) -> None:
        cmd = CreatePublicationsCommand(owner_id=uuid4(), image_ids=[uuid4()])
        cmd.image_ids = [uuid4() for _ in range(501)]
        with pytest.raises(InvalidRequest, match="1 to 500 images"):
            await publications.create_publications(cmd, world.uow, world.clock)


class TestReadAndList:
    async def test_another_owners_publication_is_a_404(self, world: Any) -> None:
        p = await one_ready(world)
        assert (await publications.get_publication(query(p), world.uow)).id == p.id
        stranger = PublicationQuery(owner_id=uuid4(), publication_id=p.id)
        with pytest.raises(NotFound, match=str(p.id)):
            await publications.get_publication(stranger, world.uow)

    async def test_pages_follow_the_cursor_newest_first(self, world: Any) -> None:
        owner = uuid4()
        made = []
        for _ in range(3):
            made.append(await one_ready(world, owner))
            world.clock.advance(1)
        first = await publications.list_publications(
            ListPublicationsQuery(owner_id=owner, limit=2), world.uow
        )
        assert [p.id for p in first.items] == [made[2].id, made[1].id]
        assert first.next_cursor is not None
        rest = await publications.list_publications(
            ListPublicationsQuery(owner_id=owner, limit=2, cursor=first.next_cursor), world.uow
        )
        assert [p.id for p in rest.items] == [made[0].id]
        assert rest.next_cursor is None


class TestUpdatePublication:
    async def test_an_edit_is_linted_again_and_announced(self, world: Any) -> None:
        p = await one_ready(world)
        world.clock.advance(60)
        cmd = UpdatePublicationCommand(
            owner_id=p.owner_id, publication_id=p.id, metadata=MetadataChanges(title="Pear, ripe")
        )
        updated = await publications.update_publication(cmd, world.uow, world.clock)
        assert updated.status is S.blocked
        assert updated.updated_at == world.clock.now
        assert world.uow.publication(p.id).status is S.blocked
        assert world.uow.event_types()[-1] == "publication.blocked"

    async def test_a_category_sent_as_null_is_removed(self, world: Any) -> None:
        p = await one_ready(world)
        changes = MetadataChanges.model_validate({"category": None})
        cmd = UpdatePublicationCommand(owner_id=p.owner_id, publication_id=p.id, metadata=changes)
        updated = await publications.update_publication(cmd, world.uow, world.clock)
        assert updated.metadata.category is None
        assert updated.status is S.blocked  # a category is required

    async def test_nothing_to_change_is_refused_before_any_transaction(self, world: Any) -> None:
        cmd = UpdatePublicationCommand(owner_id=uuid4(), publication_id=uuid4())
        with pytest.raises(InvalidRequest, match="Nothing to change"):
            await publications.update_publication(cmd, world.uow, world.clock)

    async def test_a_queued_publication_cannot_be_edited(self, world: Any) -> None:
        p = await one_ready(world, publish_when_ready=True)
        cmd = UpdatePublicationCommand(owner_id=p.owner_id, publication_id=p.id, enlarge=2)
        with pytest.raises(Conflict, match="queued; it cannot be edited"):
            await publications.update_publication(cmd, world.uow, world.clock)
        assert world.uow.publication(p.id).enlarge == 1


class TestSuggestAgain:
    async def test_it_goes_back_to_draft_and_asks_the_model(self, world: Any) -> None:
        p = await one_ready(world)
        again = await publications.suggest_publication_metadata(query(p), world.uow, world.clock)
        assert again.status is S.draft
        assert world.uow.event_types()[-1] == "publication.draft"
        assert world.uow.subjects()[-1] == WORK_PUBLISHER_SUGGEST


class TestPublish:
    async def test_without_an_agency_account_it_is_refused_saying_how_to_set_one(
        self, world: Any
    ) -> None:
        p = await one_ready(world)
        with pytest.raises(InvalidRequest, match="PUT /api/v1/publications/accounts/adobe_stock"):
            await publications.publish_publication(query(p), world.uow, world.clock)
        assert world.uow.publication(p.id).status is S.ready

    async def test_a_ready_publication_is_queued_with_its_upload_job(self, world: Any) -> None:
        p = await one_ready(world)
        await seed(world, account(p.owner_id))
        queued = await publications.publish_publication(query(p), world.uow, world.clock)
        assert queued.status is S.queued
        assert world.uow.event_types()[-1] == "publication.queued"
        assert world.uow.outbox[-1].subject == WORK_PUBLISHER_UPLOAD
        assert world.uow.outbox[-1].payload["publication_id"] == str(p.id)

    async def test_a_blocked_publication_says_what_blocks_it(self, world: Any) -> None:
        p = await one_ready(world, metadata=MetadataChanges(title="Pear, ripe", category=7))
        await seed(world, account(p.owner_id))
        with pytest.raises(Conflict, match=f"{p.id} is blocked: .*comma"):
            await publications.publish_publication(query(p), world.uow, world.clock)


class TestWithdrawAndPortal:
    async def test_withdrawn_once(self, world: Any) -> None:
        p = await one_ready(world)
        withdrawn = await publications.withdraw_publication(query(p), world.uow, world.clock)
        assert withdrawn.status is S.withdrawn
        with pytest.raises(Conflict, match="already withdrawn"):
            await publications.withdraw_publication(query(p), world.uow, world.clock)
        assert world.uow.event_types().count("publication.withdrawn") == 1

    async def test_the_portal_reports_an_uploaded_file_through_to_its_decision(
        self, world: Any
    ) -> None:
        p = await one_ready(world)
        stored = world.uow.committed.publications[p.id]
        stored.status = S.uploaded
        stored.file = PreparedFile("f.jpg", "k", 2560, 1960, 1000, "1" * 64)

        async def report(status: PortalStatus, reason: str | None = None) -> Any:
            cmd = PortalStatusCommand(
                owner_id=p.owner_id, publication_id=p.id, status=status, reason=reason
            )
            return await publications.set_portal_status(cmd, world.uow, world.clock)

        assert (await report(PortalStatus.submitted)).status is S.submitted
        world.clock.advance(3600)
        rejected = await report(PortalStatus.rejected, "  Similar content  ")
        assert rejected.rejection_reason == "Similar content"
        assert rejected.decided_at == world.clock.now
        assert world.uow.event_types()[-2:] == ["publication.submitted", "publication.rejected"]
        with pytest.raises(Conflict, match="rejected; it can become accepted only from"):
            await report(PortalStatus.accepted)


class TestBatches:
    async def test_publish_batch_queues_what_is_ready_and_leaves_the_rest(self, world: Any) -> None:
        owner = uuid4()
        clean, dirty = stored_image(owner), stored_image(owner, prompt_text="in the style of Monet")
        await seed(world, clean, dirty, account(owner))
        created = await create(world, owner, clean.id, dirty.id)
        assert [p.status for p in created.items] == [S.ready, S.blocked]
        batch = await publications.publish_batch(
            BatchQuery(owner_id=owner, batch_id=created.batch.id), world.uow, world.clock
        )
        assert batch.counts == {"queued": 1, "blocked": 1}
        assert world.uow.subjects().count(WORK_PUBLISHER_UPLOAD) == 1

    async def test_publish_batch_needs_the_account(self, world: Any) -> None:
        p = await one_ready(world)
        with pytest.raises(InvalidRequest, match="no adobe_stock account"):
            await publications.publish_batch(
                BatchQuery(owner_id=p.owner_id, batch_id=p.batch_id), world.uow, world.clock
            )

    async def test_another_owners_batch_is_a_404(self, world: Any) -> None:
        p = await one_ready(world)
        mine = BatchQuery(owner_id=p.owner_id, batch_id=p.batch_id)
        assert (await publications.get_batch(mine, world.uow)).counts == {"ready": 1}
        with pytest.raises(NotFound, match=f"no publication batch {p.batch_id}"):
            await publications.get_batch(
                BatchQuery(owner_id=uuid4(), batch_id=p.batch_id), world.uow
            )

    async def test_batches_are_listed_newest_first_with_their_counts(self, world: Any) -> None:
        owner = uuid4()
        older = await one_ready(world, owner)
        world.clock.advance(1)
        newer = await one_ready(world, owner, publish_when_ready=True)
        page = await publications.list_batches(ListBatchesQuery(owner_id=owner, limit=1), world.uow)
        assert [(b.id, b.counts) for b in page.items] == [(newer.batch_id, {"queued": 1})]
        rest = await publications.list_batches(
            ListBatchesQuery(owner_id=owner, cursor=page.next_cursor), world.uow
        )
        assert [b.id for b in rest.items] == [older.batch_id]

    async def test_the_csv_is_a_409_until_a_file_is_at_the_agency(self, world: Any) -> None:
        p = await one_ready(world)
        q = BatchQuery(owner_id=p.owner_id, batch_id=p.batch_id)
        with pytest.raises(Conflict, match="No file of batch"):
            await publications.batch_csv(q, world.uow)
        stored = world.uow.committed.publications[p.id]
        stored.status = S.uploaded
        stored.file = PreparedFile(p.remote_name, "k", 2560, 1960, 1000, "1" * 64)
        csv = await publications.batch_csv(q, world.uow)
        assert csv.rows == 1
        assert csv.filename == f"imagetron_{p.batch_id.hex[:16]}.csv"
        assert csv.content.splitlines()[1] == f'{p.remote_name},Ripe pear on linen,"pear,fruit",7,'


class TestAccounts:
    async def test_the_password_is_stored_encrypted_and_never_returned(self, world: Any) -> None:
        owner = uuid4()
        cmd = SetAgencyAccountCommand(
            owner_id=owner, agency=Agency.adobe_stock, username="  ada ", password="hunter2"
        )
        view = await accounts.set_account(
            cmd, world.uow, world.cipher, world.deps().agencies, world.clock
        )
        assert (view.username, view.has_password, view.host) == ("ada", True, world.agency.host)
        assert "hunter2" not in view.model_dump_json()
        stored = world.uow.committed.accounts[(owner, Agency.adobe_stock)]
        assert b"hunter2" not in stored.secret
        assert world.cipher.decrypt(stored.secret) == "hunter2"

    async def test_a_blank_username_or_an_agency_not_configured_is_refused(
        self, world: Any
    ) -> None:
        blank = SetAgencyAccountCommand(
            owner_id=uuid4(), agency=Agency.adobe_stock, username="  ", password="pw"
        )
        with pytest.raises(InvalidRequest, match="Both the username and the password"):
            await accounts.set_account(blank, world.uow, world.cipher, {}, world.clock)
        cmd = blank.model_copy(update={"username": "ada"})
        with pytest.raises(InvalidRequest, match="adobe_stock is not configured here"):
            await accounts.set_account(cmd, world.uow, world.cipher, {}, world.clock)
        assert world.uow.committed.accounts == {}

    async def test_get_and_delete_answer_404_for_an_account_not_set(self, world: Any) -> None:
        owner = uuid4()
        await seed(world, account(owner))
        q = AgencyAccountQuery(owner_id=owner, agency=Agency.adobe_stock)
        agencies = world.deps().agencies
        assert (await accounts.get_account(q, world.uow, agencies)).username == "ada"
        assert (await accounts.delete_account(q, world.uow, agencies)).username == "ada"
        with pytest.raises(NotFound, match="no adobe_stock account here"):
            await accounts.get_account(q, world.uow, agencies)
        with pytest.raises(NotFound, match="no adobe_stock account here"):
            await accounts.delete_account(q, world.uow, agencies)


def image_event(owner: UUID, **changes: Any) -> ImageEvent:
    image = Image(
        id=uuid4(), owner_id=owner, task_id=uuid4(), prompt_id=uuid4(), kind=ImageKind.upscale,
        index=1, is_persisted=True, content_type="image/png", bytes=100, width=2560,
        height=1960, sha256="0" * 64, attempts=1, created_at=T0, persisted_at=T0,
    )  # fmt: skip
    event = ImageEvent(
        id=uuid4(), type="image.persisted", occurred_at=T0, owner_id=owner, image=image,
        storage_key=f"{owner}/k.png", prompt_text="a pear", prompt_title=None,
    )  # fmt: skip
    return event.model_copy(update=changes)


class TestImageEvents:
    async def test_a_stored_image_is_recorded_once(self, world: Any) -> None:
        event = image_event(uuid4())
        assert await images.apply_image_event(event, world.uow) is ImageEventOutcome.RECORDED
        assert await images.apply_image_event(event, world.uow) is ImageEventOutcome.DUPLICATE
        recorded = world.uow.committed.images[event.image.id]
        assert (recorded.storage_key, recorded.prompt_text) == (event.storage_key, "a pear")

    async def test_other_events_and_incomplete_ones_are_left(self, world: Any) -> None:
        owner = uuid4()
        failed = image_event(owner, type="image.failed")
        old = image_event(owner, storage_key=None)
        assert await images.apply_image_event(failed, world.uow) is ImageEventOutcome.IGNORED
        assert await images.apply_image_event(old, world.uow) is ImageEventOutcome.IGNORED
        assert world.uow.committed.images == {}
        assert world.uow.inbox == set()


class TestReadiness:
    async def test_small_images_name_the_enlargement_that_would_do(self, world: Any) -> None:
        image = stored_image(uuid4(), width=1000, height=1000, prompt_text="a photo of a pear")
        await seed(world, image)
        q = ReadinessQuery(owner_id=image.owner_id, image_id=image.id)
        small = await images.readiness(q, world.uow)
        assert (small.ready, small.megapixels, small.suggested_file_type) == (
            False,
            1.0,
            FileType.photo,
        )
        assert "enlarge" in small.findings[0].message.lower()
        enlarged = await images.readiness(q.model_copy(update={"enlarge": 2}), world.uow)
        assert (enlarged.ready, enlarged.megapixels) == (True, 4.0)

    async def test_an_image_not_stored_is_a_404(self, world: Any) -> None:
        with pytest.raises(NotFound, match="once the images service has stored it"):
            await images.readiness(ReadinessQuery(owner_id=uuid4(), image_id=uuid4()), world.uow)
