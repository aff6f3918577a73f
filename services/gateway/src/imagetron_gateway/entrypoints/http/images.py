"""Images and their stored bytes: forwarded to the images service.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header
from fastapi.responses import Response, StreamingResponse

from imagetron_contracts import streams
from imagetron_contracts.models.images import (
    Image,
    ImageContentLink,
    ImageKind,
    ImagePage,
    ImageQuery,
    ListImagesQuery,
)
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.params import Cursor, Limit
from imagetron_gateway.entrypoints.http.problems import forwarded
from imagetron_platform.errors import ServiceUnavailable

router = APIRouter(prefix="/api/v1")


@router.get("/images", operation_id="listImages", responses=forwarded(), tags=["images"])
async def list_images(
    caller: CurrentUser,
    ctx: Context,
    task_id: UUID | None = None,
    prompt_id: UUID | None = None,
    kind: ImageKind | None = None,
    is_persisted: bool | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ImagePage:
    query = ListImagesQuery(
        owner_id=caller.id,
        task_id=task_id,
        prompt_id=prompt_id,
        kind=kind,
        is_persisted=is_persisted,
        limit=limit,
        cursor=cursor,
    )
    return await ctx.rpc.call(streams.RPC_IMAGES_IMAGES_LIST, query, ImagePage)


@router.get(
    "/images/{image_id:id}",
    operation_id="getImage",
    responses=forwarded(404),
    tags=["images"],
)
async def get_image(image_id: UUID, caller: CurrentUser, ctx: Context) -> Image:
    query = ImageQuery(owner_id=caller.id, image_id=image_id)
    return await ctx.rpc.call(streams.RPC_IMAGES_IMAGES_GET, query, Image)


@router.post(
    "/images/{image_id:id}/retry",
    operation_id="retryImage",
    status_code=202,
    responses=forwarded(404, 409),
    tags=["images"],
)
async def retry_image(image_id: UUID, caller: CurrentUser, ctx: Context) -> Image:
    query = ImageQuery(owner_id=caller.id, image_id=image_id)
    return await ctx.rpc.call(streams.RPC_IMAGES_IMAGES_RETRY, query, Image)


IMAGE_PROBLEMS = forwarded(404, 409)
#: A thumbnail belongs to one stored image, which never changes.
IMMUTABLE = "private, max-age=31536000, immutable"
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=500)]


@router.get(
    "/images/{image_id:id}/content",
    operation_id="getImageContent",
    tags=["images"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        **IMAGE_PROBLEMS,
    },
)
async def get_image_content(image_id: UUID, caller: CurrentUser, ctx: Context) -> Response:
    # The images service checks ownership and hands out a short-lived URL of the stored
    # object; the bytes are streamed through, so clients need no access to object storage.
    link = await ctx.rpc.call(
        streams.RPC_IMAGES_IMAGES_CONTENT_URL,
        ImageQuery(owner_id=caller.id, image_id=image_id),
        ImageContentLink,
    )
    return await stream_stored(ctx, link, "private, max-age=3600", if_none_match=None)


@router.get(
    "/images/{image_id}/thumbnail",
    operation_id="getImageThumbnail",
    tags=["images"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/webp": {}}},
        304: {"description": "Not modified."},
        **IMAGE_PROBLEMS,
    },
)
async def get_image_thumbnail(
    image_id: UUID, caller: CurrentUser, ctx: Context, if_none_match: IfNoneMatch = None
) -> Response:
    link = await ctx.rpc.call(
        streams.RPC_IMAGES_IMAGES_THUMBNAIL_URL,
        ImageQuery(owner_id=caller.id, image_id=image_id),
        ImageContentLink,
    )
    return await stream_stored(ctx, link, IMMUTABLE, if_none_match=if_none_match)


async def stream_stored(
    ctx: Context, link: ImageContentLink, cache_control: str, *, if_none_match: str | None
) -> Response:
    """Stream the object behind `link` (or answer 304 when the client holds it already)."""
    headers = {"Cache-Control": cache_control}
    if link.etag is not None:
        headers["ETag"] = link.etag
        if if_none_match is not None and link.etag in _entity_tags(if_none_match):
            return Response(status_code=304, headers=headers)
    upstream = await ctx.http.send(ctx.http.build_request("GET", link.url), stream=True)
    if upstream.status_code != 200:
        await upstream.aclose()
        raise ServiceUnavailable(
            f"Object storage answered {upstream.status_code} for the image; retry later."
        )

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    if "content-length" in upstream.headers:
        headers["Content-Length"] = upstream.headers["content-length"]
    return StreamingResponse(body(), media_type=link.content_type, headers=headers)


def _entity_tags(header: str) -> set[str]:
    """`If-None-Match: "a", W/"b"` → {'"a"', '"b"'} (weak comparison, RFC 9110 13.1.2)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
