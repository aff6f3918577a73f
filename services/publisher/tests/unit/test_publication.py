"""The publication state machine, its findings, and the agency CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from imagetron_contracts.models.images import ImageKind
from imagetron_contracts.models.prompts import StockFindingCode
from imagetron_contracts.models.publications import (
    Agency,
    PublicationEventType,
    PublicationStatus,
)
from imagetron_platform.errors import Conflict
from imagetron_publisher.domain.batch import CSV_HEADER, render_csv
from imagetron_publisher.domain.publication import (
    MetadataEdit,
    PreparedFile,
    Publication,
    StockMetadata,
    StoredImage,
    remote_name,
    title_from_prompt,
)

S = PublicationStatus
NOW = datetime(2026, 12, 1, tzinfo=UTC)
GOOD = MetadataEdit(title="Ripe pear on linen", keywords=("pear", "fruit"), category=7)


def image(width: int = 2560, height: int = 1960, text: str = "a pear", title: str | None = None):
    return StoredImage(
        id=uuid.uuid4(), owner_id=uuid.uuid4(), task_id=uuid.uuid4(), prompt_id=uuid.uuid4(),
        kind=ImageKind.upscale, index=1, width=width, height=height, size_bytes=1000,
        content_type="image/png", sha256="0" * 64, storage_key="k", prompt_text=text,
        prompt_title=title, persisted_at=NOW,
    )  # fmt: skip


def create(source=None, *, edit=GOOD, enlarge=1, suggest=False, auto=False):
    source = source or image()
    return Publication.create(
        owner_id=source.owner_id, batch_id=uuid.uuid4(), agency=Agency.adobe_stock,
        source=source, enlarge=enlarge, edit=edit, suggest=suggest,
        publish_when_ready=auto, now=NOW,
    )  # fmt: skip


def file(size: int = 1000) -> PreparedFile:
    return PreparedFile("x.jpg", "k.jpg", 2560, 1960, size, "1" * 64)


def test_clean_metadata_makes_it_ready_and_auto_publish_queues_it():
    publication, changes = create(auto=True)
    assert publication.status is S.queued
    assert [c.type.value for c in changes] == ["publication.created", "publication.queued"]
    assert changes[0].publication.status is S.ready  # a snapshot, not the live object


def test_findings_block_it_and_say_what_to_do():
    publication, _ = create(edit=MetadataEdit(title="Pear, ripe", keywords=()))
    assert publication.status is S.blocked
    codes = {f.code for f in publication.findings}
    assert codes == {
        StockFindingCode.title_comma,
        StockFindingCode.keywords_missing,
        StockFindingCode.category_missing,
    }
    with pytest.raises(Conflict, match="blocked"):
        publication.publish(NOW)


def test_three_megapixels_are_blocked_unless_enlarged():
    small = image(2000, 1500)
    blocked, _ = create(small)
    assert [f.code for f in blocked.findings] == [StockFindingCode.too_few_megapixels]
    assert "enlarge it 2x when preparing" in blocked.findings[0].message
    [change] = blocked.edit(MetadataEdit(), 2, NOW + timedelta(seconds=1))
    assert (blocked.status, change.type.value) == (S.ready, "publication.ready")


def test_a_brand_in_the_prompt_blocks_it_like_one_in_the_title():
    publication, _ = create(image(text="sneakers with the Nike logo"))
    assert [f.code for f in publication.findings] == [StockFindingCode.brand]


def test_suggestion_keeps_it_draft_then_settles_it_once():
    publication, changes = create(suggest=True, auto=True)
    assert publication.status is S.draft
    suggested = StockMetadata(title="Pear", keywords=("pear",), category=7)
    changes = publication.apply_suggestion(suggested, NOW)
    assert [c.type.value for c in changes] == ["publication.ready", "publication.queued"]
    assert publication.apply_suggestion(suggested, NOW) == []  # a late duplicate: ignored


def test_an_edit_wins_over_a_suggestion_still_on_its_way():
    publication, _ = create(suggest=True)
    publication.edit(MetadataEdit(title="Mine"), None, NOW)
    assert not publication.suggesting
    assert publication.apply_suggestion(StockMetadata(title="Theirs"), NOW) == []
    assert publication.metadata.title == "Mine"


def test_a_failed_suggestion_is_reported_and_linted():
    publication, _ = create(suggest=True, edit=MetadataEdit())
    [change] = publication.suggestion_failed("the model refused.", NOW)
    assert publication.status is S.blocked
    assert "No metadata could be suggested: the model refused." in (publication.error or "")
    assert change.type.value == "publication.blocked"


def test_upload_lifecycle_and_portal_steps():
    publication, _ = create(auto=True)
    assert publication.start_upload(NOW).type.value == "publication.uploading"
    assert publication.start_upload(NOW) is None  # a redelivery: no new event
    assert publication.attempts == 2
    with pytest.raises(Conflict):
        publication.withdraw(NOW)  # not while uploading
    publication.record_file(file(), NOW)
    assert publication.mark_uploaded(NOW).type.value == "publication.uploaded"
    with pytest.raises(Conflict):
        publication.publish(NOW)
    assert publication.portal_status(S.submitted, None, NOW).type.value == "publication.submitted"
    change = publication.portal_status(S.rejected, " similar content ", NOW)
    assert (publication.status, publication.rejection_reason) == (S.rejected, "similar content")
    assert change.type.value == "publication.rejected"
    with pytest.raises(Conflict):
        publication.portal_status(S.accepted, None, NOW)


def test_a_failure_can_be_published_again():
    publication, _ = create(auto=True)
    publication.start_upload(NOW)
    assert publication.mark_failed("refused", NOW).type.value == "publication.failed"
    assert publication.publish(NOW).type.value == "publication.queued"
    assert publication.error is None


def test_a_prepared_file_over_45_mb_blocks_it():
    publication, _ = create(auto=True)
    publication.start_upload(NOW)
    from imagetron_stock.files import check_file_size

    change = publication.block_on_file(check_file_size(46_000_000), NOW)
    assert (publication.status, change.type.value) == (S.blocked, "publication.blocked")
    assert publication.file is None


def test_remote_names_are_thirty_characters_and_one_per_publication():
    a, b = uuid.uuid4(), uuid.uuid4()
    assert len(remote_name(a)) == 30
    assert remote_name(a).endswith(".jpg")
    assert remote_name(a) == remote_name(a) != remote_name(b)


def test_a_title_from_the_prompt_drops_parameters_and_commas():
    assert title_from_prompt("a pear, on linen --ar 3:2 --v 7") == "A pear on linen"
    long = title_from_prompt("word " * 40)
    assert len(long) <= 70
    assert not long.endswith(" ")


def test_the_csv_is_adobes_exact_format():
    publication, _ = create(
        edit=MetadataEdit(title="Pear", keywords=("pear", "still life"), category=7)
    )
    publication.file = file()
    draft, _ = create()  # no file yet: not listed
    text, rows = render_csv([publication, draft])
    parsed = list(csv.reader(io.StringIO(text)))
    assert tuple(parsed[0]) == CSV_HEADER
    assert parsed[1:] == [["x.jpg", "Pear", "pear,still life", "7", ""]]
    assert rows == 1
    assert text.encode("utf-8").decode("utf-8") == text


def test_every_status_a_publication_moves_into_has_its_event_type():
    # `publication.draft` was missing: asking for a new suggestion of a ready publication
    # moved it to draft and failed building the event (ValueError), so the request failed.
    for status in S:
        assert PublicationEventType(f"publication.{status.value}").value.endswith(status.value)
    publication, _ = create()
    change = publication.request_suggestion(NOW + timedelta(seconds=1))
    assert (publication.status, change.type.value) == (S.draft, "publication.draft")


def test_every_announced_change_makes_the_next_version_and_its_event_carries_it():
    publication, changes = create(auto=True)  # created, then queued
    changes.append(publication.start_upload(NOW))
    publication.record_file(file(), NOW)  # not announced: the same version
    assert publication.start_upload(NOW) is None  # a redelivery: no event, no new version
    changes.append(publication.mark_uploaded(NOW))
    changes.append(publication.csv_uploaded(NOW))
    changes.append(publication.portal_status(S.accepted, None, NOW))
    versions = [change.publication.version for change in changes]
    assert versions == [1, 2, 3, 4, 5, 6]
    assert publication.version == 6
