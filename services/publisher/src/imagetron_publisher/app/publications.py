"""The publication use cases the gateway asks for (request/reply), each in one transaction
with the events it causes. Another owner's publication, batch or image is a 404."""

from __future__ import annotations

from uuid import UUID

from imagetron_contracts.models import publications as contract
from imagetron_platform.clock import Clock
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound
from imagetron_platform.pagination import Cursors, PageKey, page_size
from imagetron_platform.request_ids import id_for
from imagetron_publisher.app.messages import announce, enqueue_suggestion
from imagetron_publisher.app.ports import PublicationFilter, UnitOfWork
from imagetron_publisher.app.views import batch_view, publication_view
from imagetron_publisher.domain.batch import MAX_BATCH_SIZE, Batch, in_csv, render_csv
from imagetron_publisher.domain.publication import MetadataEdit, Publication

CURSORS = Cursors(PageKey)
#: The namespace of batch ids named by a request (`imagetron_platform.request_ids`).
REQUESTED_BATCHES = UUID("c7d3a915-6e20-4b8f-92a4-0f5e81b6d27c")


def metadata_edit(changes: contract.MetadataChanges | None) -> MetadataEdit:
    """The fields the client sent; a category sent as null removes it."""
    if changes is None:
        return MetadataEdit()
    sent = changes.model_fields_set
    return MetadataEdit(
        title=changes.title,
        keywords=tuple(changes.keywords) if changes.keywords is not None else None,
        category=changes.category,
        clear_category="category" in sent and changes.category is None,
        file_type=changes.file_type,
        fictional_people_and_property=changes.fictional_people_and_property,
    )


async def create_publications(
    cmd: contract.CreatePublicationsCommand, uow: UnitOfWork, clock: Clock
) -> contract.CreatedPublications:
    """One publication per stored image of the caller, each on its own: the images it has
    no record of are listed as errors (404) and the others go ahead. Sent again with its
    `request_id`, the batch the first attempt created (its id derives from the request id),
    as it is now: no second batch, no second event or suggestion."""
    image_ids = list(dict.fromkeys(cmd.image_ids))
    if not 1 <= len(image_ids) <= MAX_BATCH_SIZE:
        raise InvalidRequest(f"A batch has 1 to {MAX_BATCH_SIZE} images.")
    edit = metadata_edit(cmd.metadata)
    agency = cmd.agency or contract.Agency.adobe_stock
    suggest = cmd.suggest_metadata is not False
    enlarge = cmd.enlarge or 1
    now = clock()
    async with uow:
        found = {image.id: image for image in await uow.images.get_many(cmd.owner_id, image_ids)}
        errors = [_not_stored(image_id) for image_id in image_ids if image_id not in found]
        if not found:
            raise NotFound(
                "None of these images is stored for you yet; publish images once they are "
                "stored (image.persisted)."
            )
        batch = Batch(
            id=id_for(REQUESTED_BATCHES, cmd.owner_id, cmd.request_id),
            owner_id=cmd.owner_id,
            agency=agency,
            size=len(found),
            created_at=now,
        )
        if not await uow.batches.add(batch):
            return await _created_before(uow, cmd.owner_id, batch.id, image_ids)
        created: list[Publication] = []
        for image_id in image_ids:
            image = found.get(image_id)
            if image is None:
                continue
            publication, changes = Publication.create(
                owner_id=cmd.owner_id,
                batch_id=batch.id,
                agency=agency,
                source=image,
                enlarge=enlarge,
                edit=edit,
                suggest=suggest,
                publish_when_ready=bool(cmd.publish_when_ready),
                now=now,
            )
            await uow.publications.add(publication)
            await announce(uow, changes)
            if publication.suggesting:
                await enqueue_suggestion(uow, publication)
            created.append(publication)
        counts = (await uow.batches.counts([batch.id])).get(batch.id, {})
        await uow.commit()
    return contract.CreatedPublications(
        batch=batch_view(batch, counts),
        items=[publication_view(p) for p in created],
        errors=errors,
    )


def _not_stored(image_id: UUID) -> contract.ItemError:
    detail = f"There is no stored image {image_id}: it is not yours, or not stored yet."
    return contract.ItemError(image_id=image_id, status=404, detail=detail)


async def _created_before(
    uow: UnitOfWork, owner_id: UUID, batch_id: UUID, image_ids: list[UUID]
) -> contract.CreatedPublications:
    """What the request's first attempt created: its batch and publications, as they are
    now, in the order asked for; the images it has none of are the errors."""
    batch = await uow.batches.get(owner_id, batch_id)
    if batch is None:  # cannot happen: batches are not deleted
        raise NotFound(f"There is no batch {batch_id}.")
    made = {p.source.id: p for p in await uow.publications.in_batch(owner_id, batch_id)}
    counts = (await uow.batches.counts([batch_id])).get(batch_id, {})
    return contract.CreatedPublications(
        batch=batch_view(batch, counts),
        items=[publication_view(made[i]) for i in image_ids if i in made],
        errors=[_not_stored(i) for i in image_ids if i not in made],
    )


async def get_publication(
    query: contract.PublicationQuery, uow: UnitOfWork
) -> contract.Publication:
    async with uow:
        publication = await _owned(uow, query.owner_id, query.publication_id)
    return publication_view(publication)


async def list_publications(
    query: contract.ListPublicationsQuery, uow: UnitOfWork
) -> contract.PublicationPage:
    limit = page_size(query.limit)
    where = PublicationFilter(
        status=query.status,
        agency=query.agency,
        batch_id=query.batch_id,
        image_id=query.image_id,
        remote_name=query.remote_name,
    )
    async with uow:
        rows = await uow.publications.list_page(
            query.owner_id, where=where, after=CURSORS.after(query.cursor), limit=limit + 1
        )
    page = CURSORS.page(rows, limit, lambda p: PageKey(p.created_at, p.id))
    return contract.PublicationPage(
        items=[publication_view(p) for p in page.items], next_cursor=page.next_cursor
    )


async def update_publication(
    cmd: contract.UpdatePublicationCommand, uow: UnitOfWork, clock: Clock
) -> contract.Publication:
    """New metadata or enlargement, linted again (draft, ready, blocked or failed only)."""
    if cmd.metadata is None and cmd.enlarge is None:
        raise InvalidRequest("Nothing to change: send `metadata`, `enlarge` or both.")
    async with uow:
        publication = await _owned(uow, cmd.owner_id, cmd.publication_id, for_update=True)
        changes = publication.edit(metadata_edit(cmd.metadata), cmd.enlarge, clock())
        await uow.publications.save(publication)
        await announce(uow, changes)
        await uow.commit()
    return publication_view(publication)


async def suggest_publication_metadata(
    query: contract.PublicationQuery, uow: UnitOfWork, clock: Clock
) -> contract.Publication:
    """Ask the language model again; the publication is draft until it answers."""
    async with uow:
        publication = await _owned(uow, query.owner_id, query.publication_id, for_update=True)
        change = publication.request_suggestion(clock())
        await uow.publications.save(publication)
        await announce(uow, [change])
        await enqueue_suggestion(uow, publication)
        await uow.commit()
    return publication_view(publication)


async def publish_publication(
    query: contract.PublicationQuery, uow: UnitOfWork, clock: Clock
) -> contract.Publication:
    """Queue a ready (or failed) publication for upload: 409 while blocked or on its way,
    422 while the caller has no account at the agency."""
    async with uow:
        publication = await _owned(uow, query.owner_id, query.publication_id, for_update=True)
        await _require_account(uow, publication)
        change = publication.publish(clock())
        await uow.publications.save(publication)
        await announce(uow, [change])
        await uow.commit()
    return publication_view(publication)


async def withdraw_publication(
    query: contract.PublicationQuery, uow: UnitOfWork, clock: Clock
) -> contract.Publication:
    async with uow:
        publication = await _owned(uow, query.owner_id, query.publication_id, for_update=True)
        change = publication.withdraw(clock())
        await uow.publications.save(publication)
        await announce(uow, [change])
        await uow.commit()
    return publication_view(publication)


async def set_portal_status(
    cmd: contract.PortalStatusCommand, uow: UnitOfWork, clock: Clock
) -> contract.Publication:
    """What the agency's portal says (the browser extension reports it)."""
    async with uow:
        publication = await _owned(uow, cmd.owner_id, cmd.publication_id, for_update=True)
        change = publication.portal_status(
            contract.PublicationStatus(cmd.status.value), cmd.reason, clock()
        )
        await uow.publications.save(publication)
        await announce(uow, [change])
        await uow.commit()
    return publication_view(publication)


# -- batches


async def get_batch(query: contract.BatchQuery, uow: UnitOfWork) -> contract.PublicationBatch:
    async with uow:
        batch = await _owned_batch(uow, query.owner_id, query.batch_id)
        counts = await uow.batches.counts([batch.id])
    return batch_view(batch, counts.get(batch.id, {}))


async def list_batches(
    query: contract.ListBatchesQuery, uow: UnitOfWork
) -> contract.PublicationBatchPage:
    limit = page_size(query.limit)
    async with uow:
        rows = await uow.batches.list_page(
            query.owner_id, after=CURSORS.after(query.cursor), limit=limit + 1
        )
        page = CURSORS.page(rows, limit, lambda b: PageKey(b.created_at, b.id))
        counts = await uow.batches.counts([b.id for b in page.items])
    return contract.PublicationBatchPage(
        items=[batch_view(b, counts.get(b.id, {})) for b in page.items],
        next_cursor=page.next_cursor,
    )


async def publish_batch(
    query: contract.BatchQuery, uow: UnitOfWork, clock: Clock
) -> contract.PublicationBatch:
    """Queue every ready (or failed but clean) publication of the batch; the others stay."""
    now = clock()
    async with uow:
        batch = await _owned_batch(uow, query.owner_id, query.batch_id)
        publications = await uow.publications.in_batch(query.owner_id, batch.id, for_update=True)
        if publications:
            await _require_account(uow, publications[0])
        for publication in publications:
            try:
                change = publication.publish(now)
            except Conflict:
                continue  # blocked, draft or already on its way: it stays as it is
            await uow.publications.save(publication)
            await announce(uow, [change])
        counts = await uow.batches.counts([batch.id])
        await uow.commit()
    return batch_view(batch, counts.get(batch.id, {}))


async def batch_csv(query: contract.BatchQuery, uow: UnitOfWork) -> contract.BatchCsv:
    """The agency's CSV of the batch's files at the agency, as the CSV upload sends it (409
    while none is): a row naming a file the agency does not have (prepared, then refused or
    withdrawn) makes the portal reject the whole CSV."""
    async with uow:
        batch = await _owned_batch(uow, query.owner_id, query.batch_id)
        publications = await uow.publications.in_batch(query.owner_id, batch.id)
    content, rows = render_csv(p for p in publications if in_csv(p))
    if not rows:
        raise Conflict(
            f"No file of batch {batch.id} is at the agency yet; the CSV lists uploaded files."
        )
    return contract.BatchCsv(filename=batch.csv_filename, content=content, rows=rows)


async def _require_account(uow: UnitOfWork, publication: Publication) -> None:
    if await uow.accounts.get(publication.owner_id, publication.agency) is None:
        raise InvalidRequest(
            f"There is no {publication.agency} account to upload with: set it first with "
            f"PUT /api/v1/publications/accounts/{publication.agency}."
        )


async def _owned(
    uow: UnitOfWork, owner_id: UUID, publication_id: UUID, *, for_update: bool = False
) -> Publication:
    publication = await uow.publications.get(owner_id, publication_id, for_update=for_update)
    if publication is None:
        raise NotFound(f"There is no publication {publication_id}.")
    return publication


async def _owned_batch(uow: UnitOfWork, owner_id: UUID, batch_id: UUID) -> Batch:
    batch = await uow.batches.get(owner_id, batch_id)
    if batch is None:
        raise NotFound(f"There is no publication batch {batch_id}.")
    return batch
