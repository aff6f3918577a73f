"""The studio: the web UI, static files served at `/` (the page) and `/studio/` (its
modules, styles and vendored libraries), on the API's own origin.

Like every answer of the gateway, these carry the platform's strict Content-Security-Policy
(`imagetron_platform.http.PAGE_POLICY`): the page may load only what this origin serves,
run no inline script or style, and be framed by nobody; the studio is written for it. The
app's own files are revalidated on every load (`no-cache` + ETag: a 304 on loopback costs
nothing, and a new release is picked up at once); vendored libraries carry their version in
their path and never change, so they are cached for good.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STUDIO_DIR = Path(__file__).resolve().parents[2] / "studio"

REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


class StudioFiles(StaticFiles):
    """StaticFiles (ETag, Last-Modified, 304) with our cache headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        cache = IMMUTABLE if path.startswith("vendor/") else REVALIDATE
        response.headers["Cache-Control"] = cache
        return response


files = StudioFiles(directory=STUDIO_DIR)
router = APIRouter(include_in_schema=False)


@router.get("/")
async def studio_page(request: Request) -> Response:
    return await files.get_response("index.html", request.scope)
