"""A batch: the publications one request created, and the agency CSV they share."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from imagetron_contracts.models.publications import Agency, PublicationStatus
from imagetron_publisher.domain.publication import AT_THE_AGENCY, IN_DELIVERY, Publication

#: Adobe Stock's CSV: exactly this header, UTF-8, at most 5,000 rows and 1 MB.
CSV_HEADER = ("Filename", "Title", "Keywords", "Category", "Releases")
MAX_CSV_ROWS = 5000
MAX_CSV_BYTES = 1_000_000
#: The most publications one batch request may create.
MAX_BATCH_SIZE = 500


@dataclass(eq=False, kw_only=True)
class Batch:
    owner_id: UUID
    agency: Agency
    size: int
    created_at: datetime
    id: UUID = field(default_factory=uuid4)
    csv_name: str | None = None
    csv_uploaded_at: datetime | None = None

    @property
    def csv_filename(self) -> str:
        """Stable per batch (a new upload replaces it), no spaces, 30 characters at most."""
        return f"imagetron_{self.id.hex[:16]}.csv"


def in_csv(publication: Publication) -> bool:
    """A publication goes into its batch's CSV once its file is prepared and uploaded."""
    return publication.file is not None and publication.status in AT_THE_AGENCY


def settled(publications: Iterable[Publication]) -> bool:
    """No publication of the batch is still on its way: its CSV can be sent."""
    return not any(p.status in IN_DELIVERY for p in publications)


def render_csv(publications: Iterable[Publication]) -> tuple[str, int]:
    """The agency's metadata CSV (Adobe Stock's format) of the publications that have a
    prepared file, and its row count. Releases stay empty: generated people are fictional."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    rows = 0
    for publication in publications:
        if publication.file is None:
            continue
        metadata = publication.metadata
        writer.writerow(
            (
                publication.file.name,
                metadata.title,
                ",".join(metadata.keywords),
                "" if metadata.category is None else str(metadata.category),
                "",
            )
        )
        rows += 1
    text = out.getvalue()
    if rows > MAX_CSV_ROWS or len(text.encode("utf-8")) > MAX_CSV_BYTES:
        raise ValueError(
            f"the CSV would have {rows} rows and {len(text.encode())} bytes; Adobe Stock takes "
            f"at most {MAX_CSV_ROWS} rows and {MAX_CSV_BYTES} bytes"
        )
    return text, rows


def status_counts(statuses: Iterable[PublicationStatus]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.value] = counts.get(status.value, 0) + 1
    return counts
