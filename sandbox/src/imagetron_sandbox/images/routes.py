"""``/images/{name}.png``: where every image URL the sandbox hands out points."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from imagetron_sandbox.faults.store import within_attempts
from imagetron_sandbox.images.delivery import faulty_download
from imagetron_sandbox.state import SandboxDep

router = APIRouter(tags=["images"])


@router.get(
    "/images/{name}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"content": {"text/plain": {}}}},
)
async def download_image(name: str, sandbox: SandboxDep) -> Response:
    image = sandbox.images.get(name)
    if image is None:
        return PlainTextResponse("image not found", status_code=404)
    knobs = sandbox.faults.knobs.overridden(image.fault_overrides)
    if knobs.download_faulty:
        attempt = sandbox.faults.downloads.hit(name)
        if within_attempts(knobs.download_fault_attempts, attempt):
            return await faulty_download(image.png, knobs)
    return Response(
        image.png, media_type="image/png", headers={"cache-control": "public, max-age=86400"}
    )
