"""The studio's static files: served at `/` and `/studio/`, with a strict CSP, caching that
revalidates the app and keeps the versioned libraries for good, and only pinned libraries."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest

from imagetron_contracts import streams
from imagetron_gateway.entrypoints.http.studio import STUDIO_DIR

VENDORED = {
    "vendor/preact-10.28.4/preact.module.js": (
        "eb4c861f40b97781c1ddae0f185d27f3bc522e3d9cde5bf1019457d8cae7430c"
    ),
    "vendor/preact-10.28.4/hooks.module.js": (
        "9515372976248e14c94d8ae5a2d06343bff5fa66c3e357846a77acff7c0a5eeb"
    ),
    "vendor/htm-3.1.1/htm.module.js": (
        "ab33dd3f38059b9be4d5f5350128eefb2356639c4e0bbe9d9e8b3ba75847e9e4"
    ),
}


async def test_the_page_is_served_at_the_root_with_a_strict_policy(gateway):
    page = await gateway.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"
    again = await gateway.client.get("/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304


async def test_app_files_revalidate_and_vendored_ones_are_immutable(gateway):
    app = await gateway.client.get("/studio/js/main.js")
    assert app.status_code == 200
    assert "javascript" in app.headers["content-type"]
    assert app.headers["cache-control"] == "no-cache"
    lib = await gateway.client.get("/studio/vendor/preact-10.28.4/preact.module.js")
    assert lib.status_code == 200
    assert "immutable" in lib.headers["cache-control"]
    assert "default-src 'self'" in lib.headers["content-security-policy"]
    assert (await gateway.client.get("/studio/nope.js")).status_code == 404
    assert (await gateway.client.get("/studio/../settings.py")).status_code == 404


def test_the_page_has_no_inline_script_or_style():
    # The policy would block them: everything is in files of our own origin.
    for path in [*STUDIO_DIR.rglob("*.html"), *STUDIO_DIR.joinpath("js").rglob("*.js")]:
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert "<style" not in text, path
        assert not re.search(r"\beval\(|new Function\(", text), path
        assert not re.search(r"https?://(?!127\.0\.0\.1)", text), f"{path} names another origin"


def test_every_module_the_page_loads_is_preloaded_and_exists():
    index = (STUDIO_DIR / "index.html").read_text()
    preloaded = set(re.findall(r'rel="modulepreload" href="/studio/([^"]+)"', index))
    modules = {
        str(p.relative_to(STUDIO_DIR)) for p in STUDIO_DIR.joinpath("js").rglob("*.js")
    } | set(VENDORED)
    assert preloaded == modules


@pytest.mark.parametrize(("path", "sha256"), sorted(VENDORED.items()))
def test_vendored_libraries_are_the_pinned_files(path, sha256):
    data = (STUDIO_DIR / path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha256, f"{path} changed: see vendor/README.md"
    assert (STUDIO_DIR / path).parent.joinpath("LICENSE").exists()


async def test_the_studios_files_are_not_rate_limited(gateway):
    for _ in range(gateway.settings.rate_limit_per_address + 5):
        assert (await gateway.client.get("/studio/js/main.js")).status_code == 200
        assert (await gateway.client.get("/")).status_code == 200


async def test_pictures_have_their_own_budget(gateway):
    """A gallery shows hundreds of thumbnails: they do not use up the key's request limit,
    and they are limited on their own."""
    image_id = uuid.uuid4()
    gateway.services.answers[streams.RPC_IMAGES_IMAGES_THUMBNAIL_URL] = {
        "url": "http://storage.invalid/thumb.webp",
        "content_type": "image/webp",
        "etag": '"abc-t"',
    }
    held = {**gateway.auth("ada"), "If-None-Match": '"abc-t"'}
    for _ in range(gateway.settings.rate_limit_per_key):
        assert (
            await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))
        ).status_code == 200
    assert (await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))).status_code == 429
    path = f"/api/v1/images/{image_id}/thumbnail"
    for _ in range(gateway.settings.rate_limit_pictures_per_key):
        answer = await gateway.client.get(path, headers=held)
        assert answer.status_code == 304
        assert answer.headers["etag"] == '"abc-t"'
    assert (await gateway.client.get(path, headers=held)).status_code == 429
