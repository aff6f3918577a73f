"""Each verifier refuses whatever is not its provider's proof, with a plain 401; and a
provider that signs with Ed25519 (fal.ai's scheme) is one small class on the port."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from fastapi import FastAPI
from starlette.datastructures import Headers

from imagetron_gateway.adapters.webhooks import VERIFIERS, webhook_verifiers
from imagetron_gateway.adapters.webhooks.schemes import TOKEN, Ed25519Verifier
from imagetron_gateway.app.ports import WebhookParameter, WebhookRequest
from imagetron_gateway.entrypoints.http.webhooks import webhook_operations
from imagetron_platform.errors import Unauthorized
from imagetron_platform.webhook_tokens import webhook_token

TOKEN_KEY = "token-key"


class FalVerifier(Ed25519Verifier):
    """fal.ai: Ed25519 over `request id \\n user id \\n timestamp \\n sha256(body) hex`,
    the signature hex-encoded in `x-fal-webhook-signature`."""

    provider = "fal"
    signature_header = "x-fal-webhook-signature"
    timestamp_header = "x-fal-webhook-timestamp"
    id_header = "x-fal-webhook-request-id"
    parameters = (
        TOKEN,
        WebhookParameter("header", "x-fal-webhook-request-id"),
        WebhookParameter("header", "x-fal-webhook-user-id"),
        WebhookParameter("header", "x-fal-webhook-timestamp"),
        WebhookParameter("header", "x-fal-webhook-signature"),
    )

    def signed_message(self, request: WebhookRequest, body: bytes) -> bytes:
        parts = (
            request.headers.get(self.id_header, ""),
            request.headers.get("x-fal-webhook-user-id", ""),
            request.headers.get(self.timestamp_header, ""),
            hashlib.sha256(body).hexdigest(),
        )
        return "\n".join(parts).encode()


KEY = ECC.generate(curve="ed25519")
OLD_KEY = ECC.generate(curve="ed25519")
STRANGER = ECC.generate(curve="ed25519")
BODY = json.dumps({"request_id": "req-1", "status": "OK", "payload": {"images": []}}).encode()


def raw_public(key) -> bytes:
    return key.public_key().export_key(format="raw")


def fal_request(task_id, body=BODY, *, key=KEY, age=0, token=None, **overrides):
    timestamp = str(int(time.time()) - age)
    headers = {
        "x-fal-webhook-request-id": "req-1",
        "x-fal-webhook-user-id": "user-9",
        "x-fal-webhook-timestamp": timestamp,
    }
    message = "\n".join(["req-1", "user-9", timestamp, hashlib.sha256(body).hexdigest()]).encode()
    headers["x-fal-webhook-signature"] = eddsa.new(key, "rfc8032").sign(message).hex()
    headers.update(overrides)
    query = {"token": token or webhook_token(TOKEN_KEY, "fal", task_id)}
    return WebhookRequest("fal", task_id, Headers(headers), query)


def fal(keys=(KEY, OLD_KEY)) -> FalVerifier:
    return FalVerifier(token_key=TOKEN_KEY, public_keys=[raw_public(k) for k in keys])


def accepted(verifier, request, body=BODY) -> str:
    verifier.check(request)
    return verifier.verify(request, body)


def test_a_signed_fal_callback_is_accepted_under_its_request_id():
    task_id = uuid.uuid4()
    assert accepted(fal(), fal_request(task_id)) == "fal:req-1"
    # Either key of a rotation signs.
    assert accepted(fal(), fal_request(task_id, key=OLD_KEY)) == "fal:req-1"


@pytest.mark.parametrize(
    "case",
    [
        "tampered body",
        "another key",
        "stale",
        "from the future",
        "no signature",
        "garbage signature",
        "non-ASCII signature",
        "short signature",
        "no timestamp",
        "no request id",
        "another user id",
        "another task's token",
        "non-ASCII token",
        "no keys configured",
    ],
)
def test_fal_callbacks_that_fail_any_check_are_a_plain_401(case):
    task_id = uuid.uuid4()
    verifier, body = fal(), BODY
    request = {
        "tampered body": fal_request(task_id),
        "another key": fal_request(task_id, key=STRANGER),
        "stale": fal_request(task_id, age=310),
        "from the future": fal_request(task_id, age=-310),  # whole seconds: a margin
        "no signature": fal_request(task_id, **{"x-fal-webhook-signature": ""}),
        "garbage signature": fal_request(task_id, **{"x-fal-webhook-signature": "zz" * 64}),
        "non-ASCII signature": fal_request(task_id, **{"x-fal-webhook-signature": "é" * 128}),
        "short signature": fal_request(task_id, **{"x-fal-webhook-signature": "ab" * 32}),
        "no timestamp": fal_request(task_id, **{"x-fal-webhook-timestamp": ""}),
        "no request id": fal_request(task_id, **{"x-fal-webhook-request-id": ""}),
        "another user id": fal_request(task_id, **{"x-fal-webhook-user-id": "user-1"}),
        "another task's token": fal_request(
            task_id, token=webhook_token(TOKEN_KEY, "fal", uuid.uuid4())
        ),
        "non-ASCII token": fal_request(task_id, token="tökén"),
        "no keys configured": fal_request(task_id),
    }[case]
    if case == "tampered body":
        body = BODY.replace(b"OK", b"KO")
    if case == "no keys configured":
        verifier = fal(keys=())
    with pytest.raises(Unauthorized) as refused:
        accepted(verifier, request, body)
    assert refused.value.status == 401
    assert refused.value.detail == "The webhook's credentials are not valid."


@pytest.mark.parametrize("provider", [kind.provider for kind in VERIFIERS])
@pytest.mark.parametrize("token", [None, "", "tökén", "\x00", "a" * 10_000])
def test_every_provider_refuses_a_missing_or_strange_task_token(gateway, provider, token):
    verifier = webhook_verifiers(gateway.settings)[provider]
    query = {} if token is None else {"token": token}
    headers = Headers({"x-webhook-secret": "s3cret"})
    with pytest.raises(Unauthorized):
        verifier.check(
            WebhookRequest(provider, uuid.uuid4(), headers, {**query, "secret": "s3cret"})
        )


async def test_non_ascii_credentials_are_a_plain_401_over_http(gateway):
    task_id = uuid.uuid4()
    goapi = await gateway.client.post(
        f"/webhooks/goapi/{task_id}?token={webhook_token(TOKEN_KEY, 'goapi', task_id)}",
        content=b"{}",
        headers={"x-webhook-secret": "s3crét".encode(), "content-type": "application/json"},
    )
    proxy = await gateway.client.post(
        f"/webhooks/midjourney_proxy/{task_id}?token=t%C3%B6k%C3%A9n%00",
        content=b"{}",
        headers={"content-type": "application/json"},
    )
    assert (goapi.status_code, proxy.status_code) == (401, 401)
    assert gateway.callbacks.accepted == []


def test_a_provider_is_one_class_from_which_its_route_and_document_follow():
    app = FastAPI()
    app.include_router(webhook_operations([FalVerifier]))
    operation = app.openapi()["paths"]["/webhooks/fal/{task_id}"]["post"]
    assert operation["operationId"] == "receiveFalWebhook"
    documented = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert documented == {
        ("path", "task_id"),
        ("query", "token"),
        ("header", "x-fal-webhook-request-id"),
        ("header", "x-fal-webhook-user-id"),
        ("header", "x-fal-webhook-timestamp"),
        ("header", "x-fal-webhook-signature"),
    }
