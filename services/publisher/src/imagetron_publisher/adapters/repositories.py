"""SQL repositories of the publisher's schema. They never commit: the unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_contracts.models.images import ImageKind
from imagetron_contracts.models.prompts import StockFindingCode, StockFindingField
from imagetron_contracts.models.publications import Agency, FileType, PublicationStatus
from imagetron_platform.pagination import PageKey
from imagetron_publisher.adapters.tables import accounts, batches, images, publications
from imagetron_publisher.app.ports import AgencyAccount, PublicationFilter, StalePublication
from imagetron_publisher.domain.batch import Batch
from imagetron_publisher.domain.publication import (
    PreparedFile,
    Publication,
    StockMetadata,
    StoredImage,
)
from imagetron_stock.rules import StockFinding


def _image(m: Any) -> StoredImage:
    # The table's columns are the read model's fields, by name: one declaration, no
    # field-by-field copy to keep in step (the repository contract reads every field back).
    values = {f.name: m[f.name] for f in fields(StoredImage)}
    return StoredImage(**values | {"kind": ImageKind(m["kind"])})


class SqlImageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, image: StoredImage) -> None:
        values = {f.name: getattr(image, f.name) for f in fields(StoredImage)}
        values["kind"] = image.kind.value
        await self._session.execute(insert(images).values(values).on_conflict_do_nothing())

    async def get(self, owner_id: UUID, image_id: UUID) -> StoredImage | None:
        row = (
            await self._session.execute(
                select(images).where(images.c.id == image_id, images.c.owner_id == owner_id)
            )
        ).first()
        return _image(row._mapping) if row is not None else None

    async def get_many(self, owner_id: UUID, image_ids: Sequence[UUID]) -> list[StoredImage]:
        rows = await self._session.execute(
            select(images).where(images.c.owner_id == owner_id, images.c.id.in_(image_ids))
        )
        return [_image(row._mapping) for row in rows]


# Publication columns prefixed, so a join with its image keeps both sets of names apart.
_IMAGE_COLUMNS = [c.label(f"source_{c.name}") for c in images.c]


def _publication_select() -> Select[Any]:
    return select(publications, *_IMAGE_COLUMNS).join(
        images, images.c.id == publications.c.image_id
    )


def _finding(data: dict[str, Any]) -> StockFinding:
    return StockFinding(
        code=StockFindingCode(data["code"]),
        field=StockFindingField(data["field"]),
        message=data["message"],
        start=data["start"],
        end=data["end"],
        match=data["match"],
    )


def _finding_json(finding: StockFinding) -> dict[str, Any]:
    return {
        "code": finding.code.value,
        "field": finding.field.value,
        "message": finding.message,
        "start": finding.start,
        "end": finding.end,
        "match": finding.match,
    }


def _publication(row: Row[Any]) -> Publication:
    m = row._mapping
    source = _image({c.name: m[f"source_{c.name}"] for c in images.c})
    file = m["file"]
    return Publication(
        id=m["id"],
        owner_id=m["owner_id"],
        batch_id=m["batch_id"],
        agency=Agency(m["agency"]),
        source=source,
        status=PublicationStatus(m["status"]),
        enlarge=m["enlarge"],
        metadata=StockMetadata(
            title=m["title"],
            keywords=tuple(m["keywords"]),
            category=m["category"],
            file_type=FileType(m["file_type"]),
            fictional_people_and_property=m["fictional_people_and_property"],
        ),
        findings=tuple(_finding(f) for f in m["findings"]),
        suggesting=m["suggesting"],
        publish_when_ready=m["publish_when_ready"],
        file=PreparedFile(**file) if file is not None else None,
        error=m["error"],
        attempts=m["attempts"],
        rejection_reason=m["rejection_reason"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        uploaded_at=m["uploaded_at"],
        submitted_at=m["submitted_at"],
        decided_at=m["decided_at"],
        version=m["version"],
    )


def _publication_values(p: Publication) -> dict[str, Any]:
    file = p.file
    return {
        "status": p.status.value,
        "enlarge": p.enlarge,
        "title": p.metadata.title,
        "keywords": list(p.metadata.keywords),
        "category": p.metadata.category,
        "file_type": p.metadata.file_type.value,
        "fictional_people_and_property": p.metadata.fictional_people_and_property,
        "findings": [_finding_json(f) for f in p.findings],
        "suggesting": p.suggesting,
        "publish_when_ready": p.publish_when_ready,
        "file": None
        if file is None
        else {
            "name": file.name,
            "storage_key": file.storage_key,
            "width": file.width,
            "height": file.height,
            "size_bytes": file.size_bytes,
            "sha256": file.sha256,
        },
        "error": p.error,
        "attempts": p.attempts,
        "rejection_reason": p.rejection_reason,
        "updated_at": p.updated_at,
        "uploaded_at": p.uploaded_at,
        "submitted_at": p.submitted_at,
        "decided_at": p.decided_at,
        "version": p.version,
    }


def _after(table: Any, after: PageKey | None) -> Any:
    if after is None:
        return True
    return or_(
        table.c.created_at < after.created_at,
        and_(table.c.created_at == after.created_at, table.c.id < after.id),
    )


class SqlPublicationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, publication: Publication) -> None:
        await self._session.execute(
            publications.insert().values(
                id=publication.id,
                owner_id=publication.owner_id,
                batch_id=publication.batch_id,
                image_id=publication.source.id,
                agency=publication.agency.value,
                remote_name=publication.remote_name,
                created_at=publication.created_at,
                **_publication_values(publication),
            )
        )

    async def get(
        self, owner_id: UUID, publication_id: UUID, *, for_update: bool = False
    ) -> Publication | None:
        query = _publication_select().where(
            publications.c.id == publication_id, publications.c.owner_id == owner_id
        )
        if for_update:
            query = query.with_for_update(of=publications)
        row = (await self._session.execute(query)).first()
        return _publication(row) if row is not None else None

    async def save(self, publication: Publication) -> None:
        written = await self._session.execute(
            update(publications)
            .where(
                publications.c.id == publication.id,
                publications.c.version <= publication.version,
            )
            .values(**_publication_values(publication))
            .returning(publications.c.id)
        )
        if written.first() is None:
            raise StalePublication(publication)

    async def list_page(
        self, owner_id: UUID, *, where: PublicationFilter, after: PageKey | None, limit: int
    ) -> Sequence[Publication]:
        t = publications
        conditions = [t.c.owner_id == owner_id, _after(t, after)]
        if where.status is not None:
            conditions.append(t.c.status == where.status.value)
        if where.agency is not None:
            conditions.append(t.c.agency == where.agency.value)
        if where.batch_id is not None:
            conditions.append(t.c.batch_id == where.batch_id)
        if where.image_id is not None:
            conditions.append(t.c.image_id == where.image_id)
        if where.remote_name is not None:
            conditions.append(t.c.remote_name == where.remote_name)
        rows = await self._session.execute(
            _publication_select()
            .where(*conditions)
            .order_by(t.c.created_at.desc(), t.c.id.desc())
            .limit(limit)
        )
        return [_publication(row) for row in rows]

    async def delivery_backlog(self) -> tuple[int, datetime | None]:
        t = publications
        row = (
            await self._session.execute(
                select(func.count(), func.min(t.c.updated_at)).where(
                    t.c.status.in_(
                        (PublicationStatus.queued.value, PublicationStatus.uploading.value)
                    )
                )
            )
        ).one()
        return int(row[0]), row[1]

    async def in_batch(
        self, owner_id: UUID, batch_id: UUID, *, for_update: bool = False
    ) -> list[Publication]:
        query = (
            _publication_select()
            .where(publications.c.owner_id == owner_id, publications.c.batch_id == batch_id)
            .order_by(publications.c.created_at, publications.c.id)
        )
        if for_update:
            query = query.with_for_update(of=publications)
        return [_publication(row) for row in await self._session.execute(query)]


def _batch(m: Any) -> Batch:
    return Batch(
        id=m["id"],
        owner_id=m["owner_id"],
        agency=Agency(m["agency"]),
        size=m["size"],
        created_at=m["created_at"],
        csv_name=m["csv_name"],
        csv_uploaded_at=m["csv_uploaded_at"],
    )


class SqlBatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, batch: Batch) -> bool:
        added = await self._session.execute(
            insert(batches)
            .values(
                id=batch.id,
                owner_id=batch.owner_id,
                agency=batch.agency.value,
                size=batch.size,
                created_at=batch.created_at,
                csv_name=batch.csv_name,
                csv_uploaded_at=batch.csv_uploaded_at,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        return bool(getattr(added, "rowcount", 0))

    async def get(
        self, owner_id: UUID, batch_id: UUID, *, for_update: bool = False
    ) -> Batch | None:
        query = select(batches).where(batches.c.id == batch_id, batches.c.owner_id == owner_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return _batch(row._mapping) if row is not None else None

    async def save(self, batch: Batch) -> None:
        await self._session.execute(
            update(batches)
            .where(batches.c.id == batch.id)
            .values(csv_name=batch.csv_name, csv_uploaded_at=batch.csv_uploaded_at)
        )

    async def counts(self, batch_ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
        if not batch_ids:
            return {}
        rows = await self._session.execute(
            select(publications.c.batch_id, publications.c.status, func.count())
            .where(publications.c.batch_id.in_(batch_ids))
            .group_by(publications.c.batch_id, publications.c.status)
        )
        counts: dict[UUID, dict[str, int]] = {}
        for batch_id, status, count in rows:
            counts.setdefault(batch_id, {})[status] = count
        return counts

    async def list_page(self, owner_id: UUID, *, after: PageKey | None, limit: int) -> list[Batch]:
        rows = await self._session.execute(
            select(batches)
            .where(batches.c.owner_id == owner_id, _after(batches, after))
            .order_by(batches.c.created_at.desc(), batches.c.id.desc())
            .limit(limit)
        )
        return [_batch(row._mapping) for row in rows]


class SqlAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, owner_id: UUID, agency: Agency) -> AgencyAccount | None:
        row = (
            await self._session.execute(
                select(accounts).where(
                    tuple_(accounts.c.owner_id, accounts.c.agency) == (owner_id, agency.value)
                )
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        return AgencyAccount(
            owner_id=m["owner_id"],
            agency=Agency(m["agency"]),
            username=m["username"],
            secret=bytes(m["secret"]),
            updated_at=m["updated_at"],
        )

    async def put(self, account: AgencyAccount) -> None:
        values = {
            "owner_id": account.owner_id,
            "agency": account.agency.value,
            "username": account.username,
            "secret": account.secret,
            "updated_at": account.updated_at,
        }
        statement = insert(accounts).values(values)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[accounts.c.owner_id, accounts.c.agency],
                set_={k: statement.excluded[k] for k in ("username", "secret", "updated_at")},
            )
        )

    async def delete(self, owner_id: UUID, agency: Agency) -> bool:
        result = await self._session.execute(
            delete(accounts)
            .where(accounts.c.owner_id == owner_id, accounts.c.agency == agency.value)
            .returning(accounts.c.owner_id)
        )
        return result.first() is not None
