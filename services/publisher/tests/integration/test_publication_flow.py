"""From a stored image to a file at the agency, against real servers: PostgreSQL, NATS,
S3 and the sandbox's SFTP agency (asyncssh). The happy path with its CSV, a catch-up from
the stream, an interrupted upload that succeeds on retry, a wrong password, a full disk,
duplicate deliveries leaving one remote file, and other owners kept out."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import pyexiv2
import pytest
from PIL import Image as PillowImage
from PIL import ImageCms

from imagetron_contracts.models.publications import (
    AgencyAccount,
    BatchCsv,
    BatchQuery,
    CreatedPublications,
    CreatePublicationsCommand,
    ListPublicationsQuery,
    MetadataChanges,
    Publication,
    PublicationPage,
    PublicationQuery,
    PublicationStatus,
    Readiness,
    ReadinessQuery,
    SetAgencyAccountCommand,
    UploadPublicationJob,
)
from imagetron_contracts.streams import (
    RPC_PUBLISHER_ACCOUNTS_SET,
    RPC_PUBLISHER_BATCHES_CSV,
    RPC_PUBLISHER_PUBLICATIONS_CREATE,
    RPC_PUBLISHER_PUBLICATIONS_GET,
    RPC_PUBLISHER_PUBLICATIONS_LIST,
    RPC_PUBLISHER_PUBLICATIONS_PUBLISH,
    RPC_PUBLISHER_READINESS,
    WORK_PUBLISHER_UPLOAD,
)
from imagetron_platform.errors import Conflict, NotFound

from .support import AGENCY_PASSWORD, eventually, noisy_png, png

pytestmark = pytest.mark.integration

METADATA = MetadataChanges(
    title="Ripe pear on a linen cloth in morning light",
    keywords=["pear", "fruit", "still life", "linen", "morning light"],
    category=7,
)


async def account(rpc, owner, *, password=AGENCY_PASSWORD) -> str:
    username = f"artist-{owner.hex[:8]}"
    await rpc.call(
        RPC_PUBLISHER_ACCOUNTS_SET,
        SetAgencyAccountCommand(
            owner_id=owner, agency="adobe_stock", username=username, password=password
        ),
        AgencyAccount,
    )
    return username


async def publish_now(rpc, owner, image_ids, **overrides) -> CreatedPublications:
    return await rpc.call(
        RPC_PUBLISHER_PUBLICATIONS_CREATE,
        CreatePublicationsCommand(
            owner_id=owner,
            image_ids=image_ids,
            suggest_metadata=False,
            publish_when_ready=True,
            metadata=METADATA,
            **overrides,
        ),
        CreatedPublications,
    )


async def settled(rpc, owner, publication_id, statuses=("uploaded", "failed", "blocked")):
    async def probe() -> Publication | None:
        publication = await rpc.call(
            RPC_PUBLISHER_PUBLICATIONS_GET,
            PublicationQuery(owner_id=owner, publication_id=publication_id),
            Publication,
        )
        return publication if publication.status.value in statuses else None

    return await eventually(probe, what=f"publication {publication_id} settled")


async def readiness(rpc, owner, image_id, enlarge=1) -> Readiness:
    return await rpc.call(
        RPC_PUBLISHER_READINESS,
        ReadinessQuery(owner_id=owner, image_id=image_id, enlarge=enlarge),
        Readiness,
    )


async def test_a_publisher_started_late_catches_up_from_the_stream(rpc, early_image):
    owner, image_id = early_image
    # Published before the publisher's consumer existed; it replays the stream on start.
    found = await eventually(
        lambda: _ready_or_none(rpc, owner, image_id), what="the early image in the read model"
    )
    assert found.ready
    assert found.megapixels == pytest.approx(5.02, abs=0.01)


async def _ready_or_none(rpc, owner, image_id) -> Readiness | None:
    try:
        return await readiness(rpc, owner, image_id)
    except NotFound:
        return None


async def test_uploaded_with_metadata_embedded_and_a_valid_csv(rpc, images, agency):
    owner = uuid.uuid4()
    user = await account(rpc, owner)
    image_id = await images.stored(owner, png(2560, 1960), width=2560, height=1960)
    await eventually(lambda: _ready_or_none(rpc, owner, image_id))
    created = await publish_now(rpc, owner, [image_id])
    [item] = created.items
    assert item.status is PublicationStatus.queued
    done = await settled(rpc, owner, item.id)
    assert done.status is PublicationStatus.uploaded, done.error
    assert done.file is not None
    assert (done.file.width, done.file.height) == (2560, 1960)

    jpeg = agency.files(user)[done.remote_name]
    assert len(jpeg) == done.file.bytes
    with PillowImage.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.mode) == ("JPEG", "RGB")
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        assert "sRGB" in ImageCms.getProfileDescription(profile)
    with pyexiv2.ImageData(jpeg) as metadata:
        assert metadata.read_xmp()["Xmp.dc.subject"] == METADATA.keywords
        assert metadata.read_iptc()["Iptc.Application2.ObjectName"] == METADATA.title

    async def csv_report():
        reports = [r for r in agency.server.reports if r.user == user]
        return reports or None

    [report] = await eventually(csv_report, what="the CSV at the agency")
    assert report.accepted, report.problems
    assert report.rows == 1
    assert set(agency.files(user)) == {done.remote_name, report.file}
    assert report.file == f"imagetron_{created.batch.id.hex[:16]}.csv"
    csv = await rpc.call(
        RPC_PUBLISHER_BATCHES_CSV, BatchQuery(owner_id=owner, batch_id=created.batch.id), BatchCsv
    )
    assert csv.content.splitlines() == [
        "Filename,Title,Keywords,Category,Releases",
        f'{done.remote_name},{METADATA.title},"pear,fruit,still life,linen,morning light",7,',
    ]

    # Delivered again (a redelivery, a duplicate job): still one file, still uploaded.
    for _ in range(2):
        await images.js.publish(
            WORK_PUBLISHER_UPLOAD,
            json.dumps(
                UploadPublicationJob(publication_id=item.id, owner_id=owner).model_dump(mode="json")
            ).encode(),
        )
    with pytest.raises(Conflict):
        await rpc.call(
            RPC_PUBLISHER_PUBLICATIONS_PUBLISH,
            PublicationQuery(owner_id=owner, publication_id=item.id),
            Publication,
        )
    assert [n for n in agency.files(user) if n.endswith(".jpg")] == [done.remote_name]


async def test_an_interrupted_upload_is_retried_and_leaves_one_whole_file(rpc, images, agency):
    owner = uuid.uuid4()
    user = await account(rpc, owner)
    agency.faults.replace(
        agency.faults.knobs.overridden(
            {"agency_disconnect_after_bytes": 300_000, "agency_fault_attempts": 1}
        )
    )
    image_id = await images.stored(owner, noisy_png(2560, 1960), width=2560, height=1960)
    await eventually(lambda: _ready_or_none(rpc, owner, image_id))
    [item] = (await publish_now(rpc, owner, [image_id])).items
    done = await settled(rpc, owner, item.id)
    assert done.status is PublicationStatus.uploaded, done.error
    assert done.attempts == 2
    jpegs = {n: d for n, d in agency.files(user).items() if ".jpg" in n}
    assert list(jpegs) == [done.remote_name]  # no partial or temporary file left
    assert len(jpegs[done.remote_name]) == done.file.bytes


async def test_a_wrong_password_fails_at_once_naming_the_cause(rpc, images, agency):
    owner = uuid.uuid4()
    user = await account(rpc, owner, password="not-the-password")
    image_id = await images.stored(owner, png(2560, 1960), width=2560, height=1960)
    await eventually(lambda: _ready_or_none(rpc, owner, image_id))
    [item] = (await publish_now(rpc, owner, [image_id])).items
    done = await settled(rpc, owner, item.id)
    assert done.status is PublicationStatus.failed
    assert done.attempts == 1  # no retry loop
    assert "refused the SFTP login" in done.error
    assert "username or password is wrong" in done.error
    assert "not-the-password" not in done.error
    assert agency.files(user) == {}


async def test_a_full_disk_is_retried_then_fails_with_the_reason(rpc, images, agency):
    owner = uuid.uuid4()
    await account(rpc, owner)
    agency.faults.replace(agency.faults.knobs.overridden({"agency_disk_full": True}))
    image_id = await images.stored(owner, png(2560, 1960), width=2560, height=1960)
    await eventually(lambda: _ready_or_none(rpc, owner, image_id))
    [item] = (await publish_now(rpc, owner, [image_id])).items
    done = await settled(rpc, owner, item.id, statuses=("failed",))
    assert done.attempts == 3  # upload_max_deliveries in these tests
    assert done.error.startswith("Gave up after 3 attempts")
    assert "no space left" in done.error


async def test_three_megapixels_are_blocked_unless_enlarged(rpc, images):
    owner = uuid.uuid4()
    image_id = await images.stored(owner, png(2000, 1500), width=2000, height=1500)
    plain = await eventually(lambda: _ready_or_none(rpc, owner, image_id))
    assert not plain.ready
    assert plain.findings[0].message.startswith("3 MP (2000x1500): below Adobe Stock's 4 MP.")
    assert (await readiness(rpc, owner, image_id, enlarge=2)).ready
    (blocked,) = (await publish_now(rpc, owner, [image_id])).items
    assert blocked.status is PublicationStatus.blocked
    (enlarged,) = (await publish_now(rpc, owner, [image_id], enlarge=2)).items
    assert enlarged.status is PublicationStatus.queued


async def test_other_owners_get_404_and_their_images_are_not_publishable(rpc, images):
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    image_id = await images.stored(owner, png(2560, 1960), width=2560, height=1960)
    await eventually(lambda: _ready_or_none(rpc, owner, image_id))
    [item] = (await publish_now(rpc, owner, [image_id])).items
    with pytest.raises(NotFound):
        await rpc.call(
            RPC_PUBLISHER_PUBLICATIONS_GET,
            PublicationQuery(owner_id=stranger, publication_id=item.id),
            Publication,
        )
    with pytest.raises(NotFound):
        await readiness(rpc, stranger, image_id)
    with pytest.raises(NotFound):
        await publish_now(rpc, stranger, [image_id])
    mine = await images.stored(stranger, png(2560, 1960), width=2560, height=1960)
    await eventually(lambda: _ready_or_none(rpc, stranger, mine))
    mixed = await publish_now(rpc, stranger, [image_id, mine])
    assert [i.source.image_id for i in mixed.items] == [mine]
    assert [(e.image_id, e.status) for e in mixed.errors] == [(image_id, 404)]


# --- a create sent again with its request id (its first answer was lost: 504) ------------


async def drafts(rpc, owner, image_ids, request_id) -> CreatedPublications:
    cmd = CreatePublicationsCommand(
        owner_id=owner, image_ids=image_ids, suggest_metadata=False, request_id=request_id
    )
    return await rpc.call(RPC_PUBLISHER_PUBLICATIONS_CREATE, cmd, CreatedPublications)


async def publications_of(rpc, owner, image_id) -> list[uuid.UUID]:
    query = ListPublicationsQuery(owner_id=owner, image_id=image_id)
    page = await rpc.call(RPC_PUBLISHER_PUBLICATIONS_LIST, query, PublicationPage)
    return [p.id for p in page.items]


async def test_a_batch_sent_again_is_the_batch_the_first_attempt_created(rpc, images):
    """Sent again in turn and twice at once: one batch, one publication per image, and the
    answer the first attempt gave (the missing image still an error). Before request ids,
    every attempt created a batch of its own."""
    owner = uuid.uuid4()
    image_ids = [await images.stored(owner, png(64, 64), width=64, height=64) for _ in "ab"]
    for image_id in image_ids:
        await eventually(lambda i=image_id: _ready_or_none(rpc, owner, i))
    missing = uuid.uuid4()
    asked = [image_ids[1], missing, image_ids[0]]
    first = await drafts(rpc, owner, asked, "request-1")
    again = await drafts(rpc, owner, asked, "request-1")
    assert again == first
    assert [i.source.image_id for i in first.items] == [image_ids[1], image_ids[0]]
    assert [e.image_id for e in first.errors] == [missing]
    at_once = await asyncio.gather(*(drafts(rpc, owner, asked, "request-2") for _ in "ab"))
    assert at_once[0].batch.id == at_once[1].batch.id != first.batch.id
    assert at_once[0].items == at_once[1].items
    for image_id in image_ids:
        assert len(await publications_of(rpc, owner, image_id)) == 2  # request-1, request-2
