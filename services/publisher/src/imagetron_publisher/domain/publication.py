"""A publication: one stored image on its way to one stock agency, and its state machine.

    draft ──(suggestion arrives, or none asked)──▶ ready | blocked
    ready|blocked|failed|draft ──(edit / suggestion)──▶ ready | blocked | draft
    ready|failed ──publish──▶ queued ──▶ uploading ──▶ uploaded
    uploaded ──▶ submitted ──▶ accepted | rejected   (the portal, through the extension)
    queued|uploading ──(permanent error, or retries spent)──▶ failed
    anything but uploading and withdrawn ──withdraw──▶ withdrawn

`ready` and `blocked` are the same place seen through the findings: a publication is
blocked while any stock rule finds something (content: title, keywords, category and the
prompt it came from; file: megapixels after the chosen enlargement, size of the prepared
file). Every method that changes the status returns the `PublicationChange` to announce,
and every announced change makes the publication's next `version` (its event carries it, so
a consumer can drop an older event of the same publication).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from imagetron_contracts.models.images import ImageKind
from imagetron_contracts.models.prompts import StockFindingField
from imagetron_contracts.models.publications import (
    Agency,
    FileType,
    PublicationEventType,
    PublicationStatus,
)
from imagetron_platform.errors import Conflict, InvalidRequest
from imagetron_stock.files import ENLARGEMENTS, check_dimensions, check_file_size
from imagetron_stock.rules import (
    MAX_STOCK_TITLE_LENGTH,
    StockFinding,
    check_metadata,
    find_names,
    normalize_keyword,
)

S = PublicationStatus

EDITABLE = frozenset({S.draft, S.ready, S.blocked, S.failed})
PUBLISHABLE = frozenset({S.ready, S.failed})
IN_DELIVERY = frozenset({S.queued, S.uploading})
AT_THE_AGENCY = frozenset({S.uploaded, S.submitted, S.accepted, S.rejected})
_MIDJOURNEY_PARAMETER = re.compile(r"\s--\w[\w-]*(?:\s+[^\s-][^\s]*)?")


class EventKind(StrEnum):
    """What happened besides a status change."""

    CREATED = "created"
    UPDATED = "updated"
    CSV_UPLOADED = "csv_uploaded"


@dataclass(frozen=True)
class StoredImage:
    """An image the images service stored, as the image events told us (the read model)."""

    id: UUID
    owner_id: UUID
    task_id: UUID
    prompt_id: UUID
    kind: ImageKind
    index: int
    width: int
    height: int
    size_bytes: int
    content_type: str
    sha256: str
    storage_key: str
    prompt_text: str
    prompt_title: str | None
    persisted_at: datetime


@dataclass(frozen=True)
class StockMetadata:
    title: str
    keywords: tuple[str, ...] = ()
    category: int | None = None
    file_type: FileType = FileType.illustration
    fictional_people_and_property: bool = False


@dataclass(frozen=True)
class PreparedFile:
    """The rendered submission file, kept in the bucket under `storage_key`."""

    name: str
    storage_key: str
    width: int
    height: int
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class PublicationChange:
    publication: Publication
    type: PublicationEventType
    occurred_at: datetime


def remote_name(publication_id: UUID) -> str:
    """The file's name at the agency: 26 base32 characters + `.jpg` = 30, Adobe's limit;
    one per publication, so a repeated upload replaces instead of adding a file."""
    return base64.b32encode(publication_id.bytes).decode().rstrip("=").lower() + ".jpg"


def title_from_prompt(text: str) -> str:
    """A first title from a prompt's text when the prompt has none: without Midjourney
    parameters and commas, cut at a word before the limit."""
    words = " ".join(_MIDJOURNEY_PARAMETER.sub(" ", f" {text}").replace(",", " ").split())
    if len(words) <= MAX_STOCK_TITLE_LENGTH:
        return words[:1].upper() + words[1:]
    cut = words[: MAX_STOCK_TITLE_LENGTH + 1].rsplit(" ", 1)[0]
    return cut[:1].upper() + cut[1:]


def default_metadata(image: StoredImage) -> StockMetadata:
    title = (image.prompt_title or "").strip() or title_from_prompt(image.prompt_text)
    return StockMetadata(title=title)


@dataclass(frozen=True)
class MetadataEdit:
    """Fields to change; None leaves a field as it is (`clear_category` removes it)."""

    title: str | None = None
    keywords: tuple[str, ...] | None = None
    category: int | None = None
    clear_category: bool = False
    file_type: FileType | None = None
    fictional_people_and_property: bool | None = None

    def applied_to(self, metadata: StockMetadata) -> StockMetadata:
        changed = metadata
        if self.title is not None:
            changed = replace(changed, title=" ".join(self.title.split()))
        if self.keywords is not None:
            changed = replace(changed, keywords=tuple(normalize_keyword(k) for k in self.keywords))
        if self.clear_category:
            changed = replace(changed, category=None)
        elif self.category is not None:
            changed = replace(changed, category=self.category)
        if self.file_type is not None:
            changed = replace(changed, file_type=self.file_type)
        if self.fictional_people_and_property is not None:
            changed = replace(
                changed, fictional_people_and_property=self.fictional_people_and_property
            )
        return changed


@dataclass(eq=False, kw_only=True)
class Publication:
    owner_id: UUID
    batch_id: UUID
    agency: Agency
    source: StoredImage
    metadata: StockMetadata
    created_at: datetime
    updated_at: datetime
    id: UUID = field(default_factory=uuid4)
    status: PublicationStatus = S.draft
    enlarge: int = 1
    findings: tuple[StockFinding, ...] = ()
    #: A suggestion was asked for and has not arrived (the publication stays draft).
    suggesting: bool = False
    #: Queue for upload as soon as it is ready (the batch asked for it).
    publish_when_ready: bool = False
    file: PreparedFile | None = None
    error: str | None = None
    attempts: int = 0
    rejection_reason: str | None = None
    uploaded_at: datetime | None = None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    #: Increases with every announced change: the version its event carries.
    version: int = 0

    @property
    def remote_name(self) -> str:
        return remote_name(self.id)

    @classmethod
    def create(
        cls,
        *,
        owner_id: UUID,
        batch_id: UUID,
        agency: Agency,
        source: StoredImage,
        enlarge: int,
        edit: MetadataEdit,
        suggest: bool,
        publish_when_ready: bool,
        now: datetime,
    ) -> tuple[Publication, list[PublicationChange]]:
        """A new publication: draft while a suggestion is on its way, otherwise linted at
        once (and queued at once when ready and asked to)."""
        _check_enlargement(enlarge)
        publication = cls(
            owner_id=owner_id,
            batch_id=batch_id,
            agency=agency,
            source=source,
            metadata=edit.applied_to(default_metadata(source)),
            enlarge=enlarge,
            suggesting=suggest,
            publish_when_ready=publish_when_ready,
            created_at=now,
            updated_at=now,
        )
        if not suggest:
            publication._evaluate()
        changes = [publication._change(EventKind.CREATED, now)]
        if publication.status is S.ready and publish_when_ready:
            changes.append(publication._queue(now))
        return publication, changes

    # -- metadata

    def edit(
        self, edit: MetadataEdit, enlarge: int | None, now: datetime
    ) -> list[PublicationChange]:
        self._require(EDITABLE, "edited")
        if enlarge is not None:
            _check_enlargement(enlarge)
            self.enlarge = enlarge
        self.metadata = edit.applied_to(self.metadata)
        self.suggesting = False  # the artist's word wins over a suggestion still on its way
        self.file = None  # rendered from other metadata or size: render again
        return [self._reevaluate(now)]

    def request_suggestion(self, now: datetime) -> PublicationChange:
        self._require(EDITABLE, "given new metadata")
        self.suggesting = True
        self.file = None
        return self._move(S.draft, now) or self._change(EventKind.UPDATED, now)

    def apply_suggestion(self, suggested: StockMetadata, now: datetime) -> list[PublicationChange]:
        """The model's suggestion, if it is still wanted."""
        if not self.suggesting or self.status is not S.draft:
            return []
        self.metadata = suggested
        self.suggesting = False
        self.error = None
        return self._settle(now)

    def suggestion_failed(self, reason: str, now: datetime) -> list[PublicationChange]:
        if not self.suggesting or self.status is not S.draft:
            return []
        self.suggesting = False
        self.error = f"No metadata could be suggested: {reason} Edit it, or ask again."
        return self._settle(now)

    # -- delivery

    def publish(self, now: datetime) -> PublicationChange:
        """Queue for upload: from ready, or from failed to try again (if nothing blocks it:
        a failure may have been a file rule, e.g. a prepared file too large)."""
        if self.status is S.blocked:
            raise Conflict(self._blocked_detail(self.findings))
        self._require(PUBLISHABLE, "published")
        if self.status is S.failed:
            findings = evaluate(self.source, self.metadata, self.enlarge, self.file)
            if findings:
                raise Conflict(self._blocked_detail(findings))
        return self._queue(now)

    def start_upload(self, now: datetime) -> PublicationChange | None:
        """An upload attempt begins (again, after a crash: then no new event)."""
        self._require(IN_DELIVERY, "uploaded")
        self.attempts += 1
        self.updated_at = now
        return self._move(S.uploading, now)

    def record_file(self, file: PreparedFile, now: datetime) -> None:
        self.file = file
        self.updated_at = now

    def retrying(self, reason: str, now: datetime) -> PublicationChange:
        """An attempt failed and another will follow: say why, without changing status."""
        self.error = reason
        return self._change(EventKind.UPDATED, now)

    def mark_uploaded(self, now: datetime) -> PublicationChange:
        self._require(IN_DELIVERY, "marked uploaded")
        if self.file is None:
            raise Conflict(f"Publication {self.id} has no prepared file.")
        self.error = None
        self.uploaded_at = now
        return self._move(S.uploaded, now) or self._change(EventKind.UPDATED, now)

    def mark_failed(self, reason: str, now: datetime) -> PublicationChange:
        self._require(IN_DELIVERY, "marked failed")
        self.error = reason
        return self._move(S.failed, now) or self._change(EventKind.UPDATED, now)

    def block_on_file(self, findings: list[StockFinding], now: datetime) -> PublicationChange:
        """The prepared file breaks a file rule (e.g. too large): blocked until changed."""
        self._require(IN_DELIVERY, "blocked")
        self.findings = tuple(findings)
        self.file = None
        self.error = findings[0].message if findings else None
        return self._move(S.blocked, now) or self._change(EventKind.UPDATED, now)

    def csv_uploaded(self, now: datetime) -> PublicationChange:
        return self._change(EventKind.CSV_UPLOADED, now)

    # -- the agency's portal (the browser extension reports it)

    def portal_status(
        self, status: PublicationStatus, reason: str | None, now: datetime
    ) -> PublicationChange:
        allowed = {
            S.submitted: {S.uploaded},
            S.accepted: {S.uploaded, S.submitted},
            S.rejected: {S.uploaded, S.submitted},
        }.get(status)
        if allowed is None:
            raise InvalidRequest(f"{status} is not something the portal reports.")
        if self.status not in allowed:
            raise Conflict(
                f"Publication {self.id} is {self.status}; it can become {status} only from "
                f"{' or '.join(sorted(allowed))}."
            )
        if status is S.submitted:
            self.submitted_at = now
        else:
            self.submitted_at = self.submitted_at or now
            self.decided_at = now
            self.rejection_reason = (reason or "").strip() or None if status is S.rejected else None
        change = self._move(status, now)
        assert change is not None
        return change

    def withdraw(self, now: datetime) -> PublicationChange:
        if self.status is S.uploading:
            raise Conflict(f"Publication {self.id} is being uploaded; withdraw it afterwards.")
        if self.status is S.withdrawn:
            raise Conflict(f"Publication {self.id} is already withdrawn.")
        self.suggesting = False
        change = self._move(S.withdrawn, now)
        assert change is not None
        return change

    # -- internals

    def _settle(self, now: datetime) -> list[PublicationChange]:
        changes = [self._reevaluate(now)]
        if self.status is S.ready and self.publish_when_ready:
            changes.append(self._queue(now))
        return changes

    def _queue(self, now: datetime) -> PublicationChange:
        self.error = None
        change = self._move(S.queued, now)
        assert change is not None
        return change

    def _reevaluate(self, now: datetime) -> PublicationChange:
        before = self.status
        self._evaluate()
        if self.status is before:
            return self._change(EventKind.UPDATED, now)
        self.updated_at = now
        return self._status_change(now)

    def _evaluate(self) -> None:
        if self.suggesting:
            self.status = S.draft
            return
        self.findings = tuple(evaluate(self.source, self.metadata, self.enlarge, self.file))
        self.status = S.blocked if self.findings else S.ready

    def _blocked_detail(self, findings: tuple[StockFinding, ...] | list[StockFinding]) -> str:
        what = "; ".join(f.message for f in findings[:3])
        more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
        return f"Publication {self.id} is blocked: {what}{more}"

    def _require(self, statuses: frozenset[PublicationStatus], what: str) -> None:
        if self.status not in statuses:
            raise Conflict(f"Publication {self.id} is {self.status}; it cannot be {what} now.")

    def _move(self, status: PublicationStatus, now: datetime) -> PublicationChange | None:
        if self.status is status:
            return None
        self.status = status
        self.updated_at = now
        return self._status_change(now)

    def _status_change(self, now: datetime) -> PublicationChange:
        return self._announce(f"publication.{self.status.value}", now)

    def _change(self, kind: EventKind, now: datetime) -> PublicationChange:
        self.updated_at = now
        return self._announce(f"publication.{kind.value}", now)

    def _announce(self, event_type: str, now: datetime) -> PublicationChange:
        self.version += 1
        return PublicationChange(
            publication=self.snapshot(), type=PublicationEventType(event_type), occurred_at=now
        )

    def snapshot(self) -> Publication:
        return replace(self)


def evaluate(
    source: StoredImage, metadata: StockMetadata, enlarge: int, file: PreparedFile | None
) -> list[StockFinding]:
    """Every stock finding for publishing `source` with `metadata`: the content rules on
    title, keywords and category, names in the prompt the image came from, the megapixels
    after enlargement, and the prepared file's size when there is one."""
    findings = find_names(source.prompt_text, StockFindingField.text_field)
    findings += check_metadata(metadata.title, metadata.keywords, metadata.category)
    findings += check_dimensions(source.width, source.height, enlarge)
    if file is not None:
        findings += check_file_size(file.size_bytes)
    return findings


def _check_enlargement(enlarge: int) -> None:
    if enlarge not in ENLARGEMENTS:
        raise InvalidRequest(f"Enlargement must be one of {ENLARGEMENTS}, not {enlarge}.")
