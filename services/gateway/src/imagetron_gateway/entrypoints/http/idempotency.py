"""Creating operations take an `Idempotency-Key` (contracts/openapi.yaml).

`@idempotent` marks a route; its router's `IdempotentRoute` documents the header (and the
409 and 422 it can answer) and answers a request sent again with its key with the first
answer, without running the route again (app/idempotency.py). The fingerprint of a request
is its method, path and body (as JSON, so spacing and key order do not count).

A first answer can be lost after the work was done (the service that did it died before
answering, or answered too late: 503/504); the key is then given back and the request,
sent again, is done again. So a route whose work must not be done twice passes `RequestId`
(the caller, key and fingerprint, hashed) to the service, which does that work once per
request id (the images service: one task per request)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute

from imagetron_gateway.app.ports import Answer
from imagetron_gateway.context import GatewayContext
from imagetron_gateway.entrypoints.http.problems import problems

KEY_PATTERN = r"^[\x21-\x7E]+$"
KEY_MAX_LENGTH = 255
_KEY = re.compile(rf"[\x21-\x7E]{{1,{KEY_MAX_LENGTH}}}")
#: What a replay repeats of the first answer besides status and body (the rest are added
#: to every answer: security, rate-limit and correlation headers).
REPLAYED_HEADERS = ("content-type", "location", "etag")
#: Longer answers are not kept: a retry is answered again instead.
MAX_KEPT_BYTES = 256 * 1024
_MARK = "__imagetron_idempotent__"
_REQUEST_ID = "imagetron_request_id"

E = TypeVar("E", bound=Callable[..., Any])
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=KEY_MAX_LENGTH, pattern=KEY_PATTERN),
]


def _documented_key(idempotency_key: IdempotencyKey = None) -> None:
    """Documents and checks the header (a malformed key is a 422); the route acts on it."""


def _request_id(request: Request) -> str | None:
    found: str | None = getattr(request.state, _REQUEST_ID, None)
    return found


#: The request's id (for the service that does its work), or None without an
#: Idempotency-Key: the same for the same caller, key and request, whichever replica.
RequestId = Annotated[str | None, Depends(_request_id)]


def idempotent(endpoint: E) -> E:
    """Under `@router.post(...)`: the operation takes an Idempotency-Key."""
    setattr(endpoint, _MARK, True)
    return endpoint


class IdempotentRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self.idempotent = bool(getattr(endpoint, _MARK, False))
        if self.idempotent:
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or ()), Depends(_documented_key)]
            kwargs["responses"] = {**problems(409, 422), **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        answer = super().get_route_handler()
        if not self.idempotent:
            return answer

        async def answer_once(request: Request) -> Response:
            key = request.headers.get("idempotency-key")
            caller = getattr(request.state, "caller", None)
            if key is None or caller is None or not _KEY.fullmatch(key):
                return await answer(request)  # no key, or the header's check answers 422
            requests = _context(request).idempotency
            fingerprint = _fingerprint(request.method, request.url.path, await request.body())
            first = await requests.begin(caller.id, key, fingerprint)
            if first is not None:
                return Response(first.body, status_code=first.status, headers=first.headers)
            setattr(request.state, _REQUEST_ID, _request_hash(caller.id, key, fingerprint))
            try:
                response = await answer(request)
            except BaseException:
                await requests.abandon(caller.id, key, fingerprint)
                raise
            kept = _answer(response)
            if kept is None:
                await requests.abandon(caller.id, key, fingerprint)
            else:
                await requests.finish(caller.id, key, fingerprint, kept)
            return response

        return answer_once


def _context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.state.context
    return ctx


def _fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except (ValueError, RecursionError):
        canonical = body
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


def _request_hash(user_id: UUID, key: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{user_id}\n{key}\n{fingerprint}".encode()).hexdigest()


def _answer(response: Response) -> Answer | None:
    """A successful answer to keep; None for a failure (its key is given back)."""
    body = getattr(response, "body", None)
    if not 200 <= response.status_code < 300 or not isinstance(body, bytes):
        return None
    if len(body) > MAX_KEPT_BYTES:
        return None
    headers = {
        name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers
    }
    return Answer(response.status_code, headers, body)
