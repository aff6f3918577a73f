"""Delivery: prepare a publication's file and upload it to its agency, then the batch's CSV.

One upload job per queued publication (`work.publisher.upload`). The slow parts (reading
the original, rendering, SFTP) run outside any transaction; the transitions around them
(`uploading`, the prepared file, `uploaded` or `failed`) are each one transaction with their
events. Idempotent: the remote file is named after the publication, an upload goes to a
temporary name first, and a complete file already there is kept, so a redelivery after a
crash leaves one file. A wrong password or host key fails the publication at once, naming
the cause; a network, disk or slowness problem is retried with growing delays and fails it
only when the deliveries run out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from uuid import UUID

from imagetron_contracts.models.publications import (
    Agency,
    UploadBatchCsvJob,
    UploadPublicationJob,
)
from imagetron_platform.clock import Clock
from imagetron_platform.jobs import Delivery, RetryLater
from imagetron_publisher import metrics
from imagetron_publisher.app.messages import announce, enqueue_csv, enqueue_upload
from imagetron_publisher.app.ports import (
    AccountBusy,
    AgencyDelivery,
    AgencyError,
    AgencyRefused,
    AgencyUnavailable,
    CredentialCipher,
    Credentials,
    CredentialsUnreadable,
    FileRenderer,
    FileStore,
    ObjectMissing,
    StorageUnavailable,
    UnitOfWork,
    UnusableOriginal,
    UploadResult,
)
from imagetron_publisher.app.slots import AccountSlots
from imagetron_publisher.domain.batch import in_csv, render_csv, settled
from imagetron_publisher.domain.publication import (
    IN_DELIVERY,
    PreparedFile,
    Publication,
)
from imagetron_stock.files import MAX_FILE_BYTES, check_file_size
from imagetron_stock.rules import StockFinding

log = logging.getLogger(__name__)

UPLOAD_CONSUMER = "publisher-upload"
CSV_CONSUMER = "publisher-csv"
#: How soon a job for an account at its bound comes back.
BUSY_RETRY_SECONDS = 2.0


class FileRuleBroken(Exception):
    def __init__(self, findings: list[StockFinding]) -> None:
        super().__init__("; ".join(f.message for f in findings))
        self.findings = findings


def prepared_key(publication: Publication) -> str:
    """Under the owner's prefix, next to (never over) the images service's originals."""
    return f"{publication.owner_id}/publications/{publication.id}.jpg"


async def upload_publication(
    job: UploadPublicationJob,
    delivery: Delivery,
    uow: UnitOfWork,
    store: FileStore,
    renderer: FileRenderer,
    agencies: Mapping[Agency, AgencyDelivery],
    cipher: CredentialCipher,
    slots: AccountSlots,
    clock: Clock,
    max_original_bytes: int,
) -> None:
    async with uow:
        publication = await uow.publications.get(job.owner_id, job.publication_id)
        account = (
            await uow.accounts.get(job.owner_id, publication.agency)
            if publication is not None
            else None
        )
    if publication is None or publication.status not in IN_DELIVERY:
        log.info("upload job for %s: nothing to do", job.publication_id)
        return
    agency = agencies.get(publication.agency)
    if account is None or agency is None:
        metrics.UPLOAD_FAILURES.labels(publication.agency.value, "account").inc()
        await _finish_failed(
            uow,
            job,
            delivery,
            clock,
            f"There is no {publication.agency} account to upload with: set it, then publish again.",
        )
        return
    try:
        credentials = Credentials(account.username, cipher.decrypt(account.secret))
        with slots.hold(job.owner_id, publication.agency):
            publication = await _begin(uow, job, clock)
            if publication is None:
                return
            data = await _prepared(uow, publication, store, renderer, clock, max_original_bytes)
            result = await agency.upload(credentials, publication.remote_name, data)
    except AccountBusy as exc:
        if delivery.is_last and publication is not None:
            async with uow:  # a fresh series of deliveries: busy is not a failure
                if await uow.claim(UPLOAD_CONSUMER, delivery.message_id):
                    await enqueue_upload(uow, publication)
                    await uow.commit()
            return
        raise RetryLater(str(exc), delay=BUSY_RETRY_SECONDS) from exc
    except FileRuleBroken as exc:
        _failed(publication, "file_rule")
        await _finish(uow, job, delivery, clock, blocked=exc.findings)
        return
    except (AgencyRefused, UnusableOriginal, CredentialsUnreadable) as exc:
        _failed(publication, exc)
        await _finish_failed(uow, job, delivery, clock, str(exc))
        return
    except (AgencyUnavailable, StorageUnavailable) as exc:
        _failed(publication, exc)
        if not delivery.is_last:
            await _record_retry(uow, job, clock, str(exc))
            raise RetryLater(str(exc)) from exc
        await _finish_failed(
            uow, job, delivery, clock, f"Gave up after {delivery.attempt} attempts: {exc}"
        )
        return
    log.info("publication %s at %s: %s", publication.id, publication.agency, result.value)
    metrics.UPLOADS.labels(publication.agency.value, result.value).inc()
    if result is UploadResult.UPLOADED:
        metrics.UPLOADED_BYTES.labels(publication.agency.value).inc(len(data))
    await _finish(uow, job, delivery, clock, csv_via=agency)


def _failed(publication: Publication | None, why: Exception | str) -> None:
    if publication is None:
        return
    if isinstance(why, str):
        cause = why
    elif isinstance(why, AgencyError):
        cause = why.cause
    else:
        cause = {
            UnusableOriginal: "original",
            CredentialsUnreadable: "credentials",
            StorageUnavailable: "storage",
        }.get(type(why), "other")
    metrics.UPLOAD_FAILURES.labels(publication.agency.value, cause).inc()


async def measure_backlog(uow: UnitOfWork, clock: Clock) -> float:
    """Refresh the delivery backlog gauges; returns the oldest wait in seconds."""
    async with uow:
        count, oldest = await uow.publications.delivery_backlog()
    age = 0.0 if oldest is None else max(0.0, (clock() - oldest).total_seconds())
    metrics.IN_DELIVERY.set(count)
    metrics.OLDEST_IN_DELIVERY.set(age)
    return age


async def _begin(uow: UnitOfWork, job: UploadPublicationJob, clock: Clock) -> Publication | None:
    async with uow:
        publication = await uow.publications.get(job.owner_id, job.publication_id, for_update=True)
        if publication is None or publication.status not in IN_DELIVERY:
            return None
        change = publication.start_upload(clock())
        await uow.publications.save(publication)
        await announce(uow, [change])
        await uow.commit()
    return publication


async def _prepared(
    uow: UnitOfWork,
    publication: Publication,
    store: FileStore,
    renderer: FileRenderer,
    clock: Clock,
    max_original_bytes: int,
) -> bytes:
    """The submission file's bytes: the one prepared by an earlier attempt when it is still
    in the bucket, otherwise rendered from the original and stored, then recorded."""
    if publication.file is not None:
        try:
            data = await store.get(publication.file.storage_key, max_bytes=MAX_FILE_BYTES + 1)
        except ObjectMissing:
            data = b""
        if hashlib.sha256(data).hexdigest() == publication.file.sha256:
            return data
    try:
        original = await store.get(publication.source.storage_key, max_bytes=max_original_bytes)
    except ObjectMissing as exc:
        raise UnusableOriginal(
            f"The stored original of image {publication.source.id} is gone from the bucket."
        ) from exc
    rendered = await renderer.render(
        original, enlarge=publication.enlarge, metadata=publication.metadata
    )
    findings = check_file_size(len(rendered.data))
    if findings:
        raise FileRuleBroken(findings)
    key = prepared_key(publication)
    await store.put(key, rendered.data, "image/jpeg")
    file = PreparedFile(
        name=publication.remote_name,
        storage_key=key,
        width=rendered.width,
        height=rendered.height,
        size_bytes=len(rendered.data),
        sha256=rendered.sha256,
    )
    async with uow:
        current = await uow.publications.get(publication.owner_id, publication.id, for_update=True)
        if current is not None:
            current.record_file(file, clock())
            await uow.publications.save(current)
            await uow.commit()
    publication.record_file(file, clock())
    return rendered.data


async def _record_retry(
    uow: UnitOfWork, job: UploadPublicationJob, clock: Clock, reason: str
) -> None:
    async with uow:
        publication = await uow.publications.get(job.owner_id, job.publication_id, for_update=True)
        if publication is None or publication.status not in IN_DELIVERY:
            return
        change = publication.retrying(f"Retrying: {reason}", clock())
        await uow.publications.save(publication)
        await announce(uow, [change])
        await uow.commit()


async def _finish_failed(
    uow: UnitOfWork, job: UploadPublicationJob, delivery: Delivery, clock: Clock, reason: str
) -> None:
    log.warning("publication %s failed: %s", job.publication_id, reason)
    await _finish(uow, job, delivery, clock, failed=reason)


async def _finish(
    uow: UnitOfWork,
    job: UploadPublicationJob,
    delivery: Delivery,
    clock: Clock,
    *,
    failed: str | None = None,
    blocked: list[StockFinding] | None = None,
    csv_via: AgencyDelivery | None = None,
) -> None:
    """The attempt's outcome, once (inbox): uploaded, failed or blocked, with its event;
    and when an upload settles its batch, the batch's CSV is queued."""
    async with uow:
        if not await uow.claim(UPLOAD_CONSUMER, delivery.message_id):
            return
        publication = await uow.publications.get(job.owner_id, job.publication_id, for_update=True)
        if publication is None or publication.status not in IN_DELIVERY:
            return
        now = clock()
        if blocked is not None:
            change = publication.block_on_file(blocked, now)
        elif failed is not None:
            change = publication.mark_failed(failed, now)
        else:
            change = publication.mark_uploaded(now)
        await uow.publications.save(publication)
        await announce(uow, [change])
        if csv_via is not None and csv_via.takes_csv:
            siblings = await uow.publications.in_batch(job.owner_id, publication.batch_id)
            others = [p for p in siblings if p.id != publication.id]
            batch = await uow.batches.get(job.owner_id, publication.batch_id)
            if batch is not None and settled(others):
                await enqueue_csv(uow, batch)
        await uow.commit()


async def upload_batch_csv(
    job: UploadBatchCsvJob,
    delivery: Delivery,
    uow: UnitOfWork,
    agencies: Mapping[Agency, AgencyDelivery],
    cipher: CredentialCipher,
    clock: Clock,
) -> None:
    """Upload the batch's CSV (its uploaded files) where the agency takes one; the CSV
    replaces the batch's earlier one, so files uploaded later are added."""
    async with uow:
        batch = await uow.batches.get(job.owner_id, job.batch_id)
        publications = await uow.publications.in_batch(job.owner_id, job.batch_id)
        account = await uow.accounts.get(job.owner_id, batch.agency) if batch else None
    agency = agencies.get(batch.agency) if batch is not None else None
    if batch is None or agency is None or not agency.takes_csv or account is None:
        return
    listed = [p for p in publications if in_csv(p)]
    content, rows = render_csv(listed)
    if not rows:
        return
    try:
        credentials = Credentials(account.username, cipher.decrypt(account.secret))
        await agency.upload(credentials, batch.csv_filename, content.encode("utf-8"), replace=True)
    except (AgencyRefused, CredentialsUnreadable) as exc:
        log.warning("the CSV of batch %s was refused: %s", batch.id, exc)
        return
    except AgencyUnavailable as exc:
        if not delivery.is_last:
            raise RetryLater(str(exc)) from exc
        log.warning("gave up uploading the CSV of batch %s: %s", batch.id, exc)
        return
    async with uow:
        if not await uow.claim(CSV_CONSUMER, delivery.message_id):
            return
        batch = await uow.batches.get(job.owner_id, job.batch_id, for_update=True)
        if batch is None:
            return
        now = clock()
        batch.csv_name, batch.csv_uploaded_at = batch.csv_filename, now
        await uow.batches.save(batch)
        listed_ids: set[UUID] = {p.id for p in listed}
        in_batch = await uow.publications.in_batch(job.owner_id, job.batch_id, for_update=True)
        for publication in in_batch:
            if publication.id in listed_ids:
                change = publication.csv_uploaded(now)
                await uow.publications.save(publication)  # its new version
                await announce(uow, [change])
        await uow.commit()
