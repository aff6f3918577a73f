"""Publications to stock agencies: forwarded to the publisher service.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document. Routes with a fixed segment after
`/publications/` (`readiness`, `batches`, `accounts`) are declared before
`/publications/{publication_id}`, which would otherwise take them for an id."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from imagetron_contracts import streams
from imagetron_contracts.models.publications import (
    Agency,
    AgencyAccount,
    AgencyAccountQuery,
    AgencyAccountRequest,
    BatchCsv,
    BatchQuery,
    CreatedPublications,
    CreatePublicationsCommand,
    CreatePublicationsRequest,
    ListBatchesQuery,
    ListPublicationsQuery,
    PortalStatusCommand,
    PortalStatusRequest,
    Publication,
    PublicationBatch,
    PublicationBatchPage,
    PublicationPage,
    PublicationQuery,
    PublicationStatus,
    Readiness,
    ReadinessQuery,
    SetAgencyAccountCommand,
    UpdatePublicationCommand,
    UpdatePublicationRequest,
)
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.idempotency import IdempotentRoute, RequestId, idempotent
from imagetron_gateway.entrypoints.http.params import Cursor, Limit
from imagetron_gateway.entrypoints.http.problems import forwarded

router = APIRouter(
    prefix="/api/v1/publications", tags=["publications"], route_class=IdempotentRoute
)

#: A batch of hundreds of images is created in one transaction: more than the usual 5 s.
CREATE_TIMEOUT_SECONDS = 30.0
ONE = forwarded(404)
CHANGE = forwarded(404, 409)


@router.post(
    "",
    status_code=201,
    operation_id="createPublications",
    # 404: none of the images is stored for the caller (with some, those are `errors`).
    responses=forwarded(404),
)
@idempotent
async def create_publications(
    body: CreatePublicationsRequest, caller: CurrentUser, ctx: Context, request_id: RequestId
) -> CreatedPublications:
    command = CreatePublicationsCommand(
        owner_id=caller.id,
        image_ids=body.image_ids,
        agency=body.agency,
        enlarge=body.enlarge,
        suggest_metadata=body.suggest_metadata,
        publish_when_ready=body.publish_when_ready,
        metadata=body.metadata,
        request_id=request_id,
    )
    return await ctx.rpc.call(
        streams.RPC_PUBLISHER_PUBLICATIONS_CREATE,
        command,
        CreatedPublications,
        timeout=CREATE_TIMEOUT_SECONDS,
    )


@router.get("", operation_id="listPublications", responses=forwarded())
async def list_publications(
    caller: CurrentUser,
    ctx: Context,
    status: PublicationStatus | None = None,
    agency: Agency | None = None,
    batch_id: UUID | None = None,
    image_id: UUID | None = None,
    remote_name: Annotated[str | None, Query(max_length=30)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PublicationPage:
    query = ListPublicationsQuery(
        owner_id=caller.id,
        status=status,
        agency=agency,
        batch_id=batch_id,
        image_id=image_id,
        remote_name=remote_name,
        limit=limit,
        cursor=cursor,
    )
    return await ctx.rpc.call(streams.RPC_PUBLISHER_PUBLICATIONS_LIST, query, PublicationPage)


@router.get("/readiness", operation_id="getReadiness", responses=ONE)
async def get_readiness(
    image_id: UUID,
    caller: CurrentUser,
    ctx: Context,
    agency: Agency | None = None,
    enlarge: Annotated[int, Query(ge=1, le=4)] = 1,
) -> Readiness:
    query = ReadinessQuery(
        owner_id=caller.id,
        image_id=image_id,
        agency=agency or Agency.adobe_stock,
        enlarge=enlarge,
    )
    return await ctx.rpc.call(streams.RPC_PUBLISHER_READINESS, query, Readiness)


@router.get("/batches", operation_id="listPublicationBatches", responses=forwarded())
async def list_batches(
    caller: CurrentUser, ctx: Context, limit: Limit = 50, cursor: Cursor = None
) -> PublicationBatchPage:
    query = ListBatchesQuery(owner_id=caller.id, limit=limit, cursor=cursor)
    return await ctx.rpc.call(streams.RPC_PUBLISHER_BATCHES_LIST, query, PublicationBatchPage)


@router.get("/batches/{batch_id:id}", operation_id="getPublicationBatch", responses=ONE)
async def get_batch(batch_id: UUID, caller: CurrentUser, ctx: Context) -> PublicationBatch:
    query = BatchQuery(owner_id=caller.id, batch_id=batch_id)
    return await ctx.rpc.call(streams.RPC_PUBLISHER_BATCHES_GET, query, PublicationBatch)


@router.post(
    "/batches/{batch_id:id}/publish",
    status_code=202,
    operation_id="publishPublicationBatch",
    responses=ONE,
)
async def publish_batch(batch_id: UUID, caller: CurrentUser, ctx: Context) -> PublicationBatch:
    query = BatchQuery(owner_id=caller.id, batch_id=batch_id)
    return await ctx.rpc.call(streams.RPC_PUBLISHER_BATCHES_PUBLISH, query, PublicationBatch)


@router.get(
    "/batches/{batch_id:id}/csv",
    operation_id="getPublicationBatchCsv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **CHANGE},
)
async def get_batch_csv(batch_id: UUID, caller: CurrentUser, ctx: Context) -> Response:
    query = BatchQuery(owner_id=caller.id, batch_id=batch_id)
    csv = await ctx.rpc.call(streams.RPC_PUBLISHER_BATCHES_CSV, query, BatchCsv)
    return Response(
        csv.content.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{csv.filename}"'},
    )


@router.get("/accounts/{agency}", operation_id="getAgencyAccount", responses=ONE)
async def get_account(agency: Agency, caller: CurrentUser, ctx: Context) -> AgencyAccount:
    query = AgencyAccountQuery(owner_id=caller.id, agency=agency)
    return await ctx.rpc.call(streams.RPC_PUBLISHER_ACCOUNTS_GET, query, AgencyAccount)


@router.put("/accounts/{agency}", operation_id="setAgencyAccount", responses=forwarded())
async def set_account(
    agency: Agency, body: AgencyAccountRequest, caller: CurrentUser, ctx: Context
) -> AgencyAccount:
    command = SetAgencyAccountCommand(
        owner_id=caller.id,
        agency=agency,
        username=body.username,
        password=body.password.get_secret_value(),
    )
    return await ctx.rpc.call(streams.RPC_PUBLISHER_ACCOUNTS_SET, command, AgencyAccount)


@router.delete(
    "/accounts/{agency}",
    status_code=204,
    response_class=Response,
    operation_id="deleteAgencyAccount",
    responses=ONE,
)
async def delete_account(agency: Agency, caller: CurrentUser, ctx: Context) -> Response:
    query = AgencyAccountQuery(owner_id=caller.id, agency=agency)
    await ctx.rpc.call(streams.RPC_PUBLISHER_ACCOUNTS_DELETE, query, AgencyAccount)
    return Response(status_code=204)


@router.get("/{publication_id:id}", operation_id="getPublication", responses=ONE)
async def get_publication(publication_id: UUID, caller: CurrentUser, ctx: Context) -> Publication:
    query = PublicationQuery(owner_id=caller.id, publication_id=publication_id)
    return await ctx.rpc.call(streams.RPC_PUBLISHER_PUBLICATIONS_GET, query, Publication)


@router.patch("/{publication_id:id}", operation_id="updatePublication", responses=CHANGE)
async def update_publication(
    publication_id: UUID, body: UpdatePublicationRequest, caller: CurrentUser, ctx: Context
) -> Publication:
    command = UpdatePublicationCommand(
        owner_id=caller.id,
        publication_id=publication_id,
        metadata=body.metadata,
        enlarge=body.enlarge,
    )
    return await ctx.rpc.call(streams.RPC_PUBLISHER_PUBLICATIONS_UPDATE, command, Publication)


async def _act(subject: str, publication_id: UUID, caller_id: UUID, ctx: Context) -> Publication:
    query = PublicationQuery(owner_id=caller_id, publication_id=publication_id)
    return await ctx.rpc.call(subject, query, Publication)


@router.post(
    "/{publication_id:id}/suggest",
    status_code=202,
    operation_id="suggestPublicationMetadata",
    responses=CHANGE,
)
async def suggest_metadata(publication_id: UUID, caller: CurrentUser, ctx: Context) -> Publication:
    return await _act(streams.RPC_PUBLISHER_PUBLICATIONS_SUGGEST, publication_id, caller.id, ctx)


@router.post(
    "/{publication_id:id}/publish",
    status_code=202,
    operation_id="publishPublication",
    responses=CHANGE,
)
async def publish(publication_id: UUID, caller: CurrentUser, ctx: Context) -> Publication:
    return await _act(streams.RPC_PUBLISHER_PUBLICATIONS_PUBLISH, publication_id, caller.id, ctx)


@router.post("/{publication_id:id}/withdraw", operation_id="withdrawPublication", responses=CHANGE)
async def withdraw(publication_id: UUID, caller: CurrentUser, ctx: Context) -> Publication:
    return await _act(streams.RPC_PUBLISHER_PUBLICATIONS_WITHDRAW, publication_id, caller.id, ctx)


@router.post(
    "/{publication_id:id}/portal", operation_id="setPublicationPortalStatus", responses=CHANGE
)
async def set_portal_status(
    publication_id: UUID, body: PortalStatusRequest, caller: CurrentUser, ctx: Context
) -> Publication:
    command = PortalStatusCommand(
        owner_id=caller.id, publication_id=publication_id, status=body.status, reason=body.reason
    )
    return await ctx.rpc.call(
        streams.RPC_PUBLISHER_PUBLICATIONS_PORTAL_STATUS, command, Publication
    )
