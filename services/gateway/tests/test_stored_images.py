"""Stored image bytes pass through the gateway: the images service checks ownership and
hands out a short-lived URL, the gateway streams the object (or answers 304 when the
client holds it). Object storage is a stand-in HTTP server here (httpx's mock transport)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import httpx

from imagetron_contracts import streams
from imagetron_platform.errors import NotFound

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _object(body: bytes, status: int = 200) -> httpx.Response:
    """An answer whose body is streamed, as a real server's is."""
    headers = {"content-length": str(len(body))}
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def _storage(gateway, handler) -> list[httpx.Request]:
    """Route the gateway's object-storage client to `handler`; the requests it saw."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    gateway.state["context"] = replace(gateway.state["context"], http=http)
    return seen


async def test_the_content_is_streamed_from_storage_with_its_length(gateway):
    image_id = uuid.uuid4()
    gateway.services.answers[streams.RPC_IMAGES_IMAGES_CONTENT_URL] = {
        "url": "http://storage.invalid/original.png",
        "content_type": "image/png",
        "etag": None,
    }
    seen = _storage(gateway, lambda _: _object(PNG))
    answer = await gateway.client.get(
        f"/api/v1/images/{image_id}/content", headers=gateway.auth("ada")
    )
    assert answer.status_code == 200
    assert answer.content == PNG
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["content-length"] == str(len(PNG))
    assert answer.headers["cache-control"] == "private, max-age=3600"
    assert "etag" not in answer.headers
    assert [str(r.url) for r in seen] == ["http://storage.invalid/original.png"]
    # Ownership is the images service's: the caller's id goes with the question.
    [(_, query)] = gateway.services.calls
    assert query.owner_id == gateway.people["ada"].id  # type: ignore[attr-defined]


async def test_a_weak_or_listed_entity_tag_is_answered_304_without_reading_storage(gateway):
    gateway.services.answers[streams.RPC_IMAGES_IMAGES_THUMBNAIL_URL] = {
        "url": "http://storage.invalid/thumb.webp",
        "content_type": "image/webp",
        "etag": '"abc"',
    }
    seen = _storage(gateway, lambda _: _object(b"webp"))
    path = f"/api/v1/images/{uuid.uuid4()}/thumbnail"
    for held in ('W/"abc"', '"other", "abc"'):
        answer = await gateway.client.get(
            path, headers={**gateway.auth("ada"), "If-None-Match": held}
        )
        assert answer.status_code == 304
        assert answer.headers["etag"] == '"abc"'
    assert seen == []
    # Another tag: the bytes, marked immutable.
    answer = await gateway.client.get(path, headers={**gateway.auth("ada"), "If-None-Match": '"x"'})
    assert answer.status_code == 200
    assert answer.content == b"webp"
    assert "immutable" in answer.headers["cache-control"]


async def test_storage_that_does_not_answer_200_is_a_503_with_retry_after(gateway):
    gateway.services.answers[streams.RPC_IMAGES_IMAGES_CONTENT_URL] = {
        "url": "http://storage.invalid/original.png",
        "content_type": "image/png",
        "etag": '"e"',
    }
    _storage(gateway, lambda _: _object(b"<Error>expired</Error>", 403))
    answer = await gateway.client.get(
        f"/api/v1/images/{uuid.uuid4()}/content", headers=gateway.auth("ada")
    )
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    assert "Object storage answered 403" in answer.json()["detail"]


async def test_another_users_image_is_not_found_and_storage_is_not_asked(gateway):
    gateway.services.answers[streams.RPC_IMAGES_IMAGES_CONTENT_URL] = NotFound("No such image.")
    seen = _storage(gateway, lambda _: _object(PNG))
    answer = await gateway.client.get(
        f"/api/v1/images/{uuid.uuid4()}/content", headers=gateway.auth("ada")
    )
    assert answer.status_code == 404
    assert answer.json()["detail"] == "No such image."
    assert seen == []
