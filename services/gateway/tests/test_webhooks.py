"""The webhook boundary: nothing crosses it without the provider's credentials (shared
secret or Standard Webhooks signature, and the task's own token), and nothing accepted is
answered 2xx before it is stored."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from imagetron_gateway.adapters.webhooks import webhook_verifiers
from imagetron_gateway.adapters.webhooks.schemes import without_credentials
from imagetron_gateway.entrypoints.http.webhooks import WebhookReceiver
from imagetron_gateway.settings import GatewaySettings
from imagetron_platform.metrics import REGISTRY
from imagetron_platform.webhook_tokens import webhook_token

BODY = {"timestamp": 1700000000, "data": {"task_id": "p-1", "status": "completed"}}
JSON = {"content-type": "application/json"}


def _url(gateway, task_id, token=None):
    token = token or webhook_token("token-key", "goapi", task_id)
    return f"/webhooks/goapi/{task_id}?token={token}"


async def test_verified_callback_is_stored_with_a_body_hash_as_dedupe_id(gateway):
    task_id = uuid.uuid4()
    raw = json.dumps(BODY).encode()
    response = await gateway.client.post(
        _url(gateway, task_id), content=raw, headers={"x-webhook-secret": "s3cret", **JSON}
    )
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    [(callback, dedupe_id)] = gateway.callbacks.accepted
    assert callback.task_id == task_id
    assert callback.provider == "goapi"
    assert callback.body == BODY
    assert dedupe_id == "goapi:" + hashlib.sha256(raw).hexdigest()


async def test_wrong_or_missing_secret_is_401_and_nothing_is_stored(gateway):
    task_id = uuid.uuid4()
    for headers in (
        {},
        {"x-webhook-secret": "wrong"},
        {"x-webhook-secret": ""},
        {"x-webhook-secret": "s3cret "},
    ):
        response = await gateway.client.post(_url(gateway, task_id), json=BODY, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
    assert gateway.callbacks.accepted == []


async def test_a_token_for_another_task_or_provider_is_401(gateway):
    task_id, other = uuid.uuid4(), uuid.uuid4()
    stolen = webhook_token("token-key", "goapi", other)
    foreign = webhook_token("token-key", "replicate", task_id)
    forged = webhook_token("guessed-key", "goapi", task_id)
    for token in (stolen, foreign, forged, "x"):
        response = await gateway.client.post(
            _url(gateway, task_id, token), json=BODY, headers={"x-webhook-secret": "s3cret"}
        )
        assert response.status_code == 401, token
    missing = await gateway.client.post(
        f"/webhooks/goapi/{task_id}", json=BODY, headers={"x-webhook-secret": "s3cret"}
    )
    assert missing.status_code == 401  # a missing credential is a wrong one
    assert gateway.callbacks.accepted == []


async def test_malformed_bodies_are_clear_422s(gateway):
    task_id = uuid.uuid4()
    headers = {"x-webhook-secret": "s3cret", **JSON}
    for content, needle in (
        (b"not json", "not UTF-8 JSON"),
        (b"\xff\xfe{}", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper"),
        (b'{"a": ' + b"[" * 2_000 + b"]" * 2_000 + b"}", "nested deeper"),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "takes 4096"),
    ):
        response = await gateway.client.post(
            _url(gateway, task_id), content=content, headers=headers
        )
        assert response.status_code == (413 if needle == "takes 4096" else 422), needle
        assert needle in response.json()["detail"]
    assert gateway.callbacks.accepted == []


async def test_a_streamed_body_past_the_limit_is_a_413_and_not_stored(gateway):
    """No Content-Length to refuse it by: the guard counts the body as it arrives."""

    async def chunks():
        for _ in range(gateway.settings.webhook_max_bytes // 1024 + 2):
            yield b" " * 1024

    response = await gateway.client.post(
        _url(gateway, uuid.uuid4()),
        content=chunks(),
        headers={"x-webhook-secret": "s3cret", **JSON},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert gateway.callbacks.accepted == []


async def test_storage_down_is_503_so_the_provider_retries(gateway):
    gateway.callbacks.fail = True
    response = await gateway.client.post(
        _url(gateway, uuid.uuid4()), json=BODY, headers={"x-webhook-secret": "s3cret"}
    )
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]


# --- the receiver: every path under /webhooks/, before the API's guard and router ---------


def _is_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    return response.json()


async def test_a_path_under_webhooks_that_is_no_callback_route_is_a_404_problem(gateway):
    task_id = uuid.uuid4()
    for path in (
        "/webhooks/",
        "/webhooks/goapi",
        "/webhooks/goapi/",
        "/webhooks/goapi/42",
        f"/webhooks/goapi/{task_id}/more",
        f"/webhooks/nobody/{task_id}",
        f"/webhooks//{task_id}",
    ):
        problem = _is_problem(await gateway.client.post(path, json=BODY, headers=JSON), 404)
        assert "providers: goapi, midjourney_proxy, replicate" in problem["detail"], path
    assert gateway.callbacks.accepted == []


async def test_a_callback_route_takes_only_post(gateway):
    task_id = uuid.uuid4()
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = await gateway.client.request(method, _url(gateway, task_id))
        problem = _is_problem(response, 405)
        assert response.headers["allow"] == "POST"
        assert problem["detail"] == f"{method} is not allowed here; use POST."
    assert gateway.callbacks.accepted == []


async def test_callbacks_are_answered_with_the_platforms_headers(gateway):
    """Correlation id, security headers: the platform's middleware still wraps them."""
    task_id = uuid.uuid4()
    accepted = await gateway.client.post(
        _url(gateway, task_id),
        json=BODY,
        headers={"x-webhook-secret": "s3cret", "X-Request-ID": "0123456789abcdef0123456789abcdef"},
    )
    refused = await gateway.client.post(_url(gateway, task_id), json=BODY)
    assert (accepted.status_code, refused.status_code) == (200, 401)
    assert accepted.headers["x-request-id"] == "0123456789abcdef0123456789abcdef"
    assert len(refused.headers["x-request-id"]) == 32
    for response in (accepted, refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def _requests_counted(route: str, status: str) -> float:
    labels = {"service": "gateway", "method": "POST", "route": route, "status": status}
    return REGISTRY.get_sample_value("imagetron_http_requests_total", labels) or 0.0


async def test_callbacks_are_counted_per_provider_route_not_per_task(gateway):
    route = "/webhooks/goapi/{task_id:id}"
    before = _requests_counted(route, "200"), _requests_counted(route, "401")
    for _ in range(3):
        task_id = uuid.uuid4()
        ok = await gateway.client.post(
            _url(gateway, task_id), json=BODY, headers={"x-webhook-secret": "s3cret"}
        )
        assert ok.status_code == 200
    assert (await gateway.client.post(_url(gateway, uuid.uuid4()), json=BODY)).status_code == 401
    after = _requests_counted(route, "200"), _requests_counted(route, "401")
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)


async def test_a_provider_that_hangs_up_mid_body_gets_no_answer_and_nothing_is_stored(gateway):
    task_id = uuid.uuid4()
    token = webhook_token("token-key", "goapi", task_id)
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/webhooks/goapi/{task_id}",
        "raw_path": f"/webhooks/goapi/{task_id}".encode(),
        "query_string": f"token={token}".encode(),
        "headers": [(b"content-type", b"application/json"), (b"x-webhook-secret", b"s3cret")],
        "state": dict(gateway.state),
    }
    messages = [
        {"type": "http.request", "body": b'{"timestamp": 1', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    async def elsewhere(scope, receive, send):
        raise AssertionError("a callback must not reach the API's routes")

    await WebhookReceiver(elsewhere, providers=["goapi"])(scope, receive, send)
    assert sent == []
    assert gateway.callbacks.accepted == []


# --- midjourney-proxy: the per-task token alone, in the callback URL it echoes -------------

MJ_TASK = {
    "id": "1712345678901234", "action": "IMAGINE", "status": "IN_PROGRESS", "progress": "62%",
    "imageUrl": "https://cdn.example/preview.webp", "failReason": None,
}  # fmt: skip


def _mj_url(task_id, token=None, secret=None):
    token = token or webhook_token("token-key", "midjourney_proxy", task_id)
    query = f"token={token}" + (f"&secret={secret}" if secret is not None else "")
    return f"/webhooks/midjourney_proxy/{task_id}?{query}"


async def test_verified_midjourney_proxy_callback_is_stored_with_a_body_hash(gateway):
    task_id = uuid.uuid4()
    raw = json.dumps(MJ_TASK).encode()
    response = await gateway.client.post(_mj_url(task_id), content=raw, headers=JSON)
    assert response.status_code == 200
    [(callback, dedupe_id)] = gateway.callbacks.accepted
    assert (callback.provider, callback.task_id, callback.body) == (
        "midjourney_proxy", task_id, MJ_TASK,
    )  # fmt: skip
    assert dedupe_id == "midjourney_proxy:" + hashlib.sha256(raw).hexdigest()


async def test_midjourney_proxy_needs_its_task_token_and_no_shared_secret(gateway):
    """The proxy echoes its callback URL in every body and logs it: no shared secret goes
    there. URLs given out before carried one; it is ignored, right or wrong."""
    task_id = uuid.uuid4()
    for secret in (None, "s3cret", "wrong"):
        response = await gateway.client.post(_mj_url(task_id, secret=secret), json=MJ_TASK)
        assert response.status_code == 200, secret
    # The same body each time: one message id, stored once by the stream.
    assert len({dedupe_id for _, dedupe_id in gateway.callbacks.accepted}) == 1


async def test_midjourney_proxy_token_of_another_task_or_provider_is_401(gateway):
    task_id = uuid.uuid4()
    for token in (
        webhook_token("token-key", "midjourney_proxy", uuid.uuid4()),
        webhook_token("token-key", "goapi", task_id),
        webhook_token("guessed-key", "midjourney_proxy", task_id),
        "x",
    ):
        response = await gateway.client.post(_mj_url(task_id, token), json=MJ_TASK)
        assert response.status_code == 401, token
    missing = await gateway.client.post(
        f"/webhooks/midjourney_proxy/{task_id}?secret=s3cret", json=MJ_TASK
    )
    assert missing.status_code == 401
    assert gateway.callbacks.accepted == []


# --- what is stored: the body without the credentials the provider echoed ---------------

RECORDED = Path(__file__).parents[2] / "images" / "tests" / "fixtures" / "providers"


def _echoing(provider: str, name: str, task_id: uuid.UUID, secret: str) -> bytes:
    """A recorded callback with our real credentials where the provider echoes them."""
    token = webhook_token("token-key", provider, task_id)
    text = (RECORDED / provider / name).read_text()
    return (
        text.replace("ECHOED-PER-TASK-TOKEN", token)
        .replace("ECHOED-SHARED-SECRET", secret)
        .encode()
    )


async def test_goapi_callbacks_are_stored_without_the_echoed_secret_and_token(gateway):
    task_id = uuid.uuid4()
    raw = _echoing("goapi", "webhook-completed-imagine.json", task_id, "s3cret")
    response = await gateway.client.post(
        _url(gateway, task_id), content=raw, headers={"x-webhook-secret": "s3cret", **JSON}
    )
    assert response.status_code == 200
    [(callback, dedupe_id)] = gateway.callbacks.accepted
    stored = json.dumps(callback.body)
    token = webhook_token("token-key", "goapi", task_id)
    assert "s3cret" not in stored
    assert token not in stored
    assert callback.body["data"]["config"]["webhook_config"] == {
        "endpoint": "[redacted]", "secret": "[redacted]",
    }  # fmt: skip
    # Everything else is as sent; a retry of these bytes is still the same message.
    assert callback.body["data"]["output"] == json.loads(raw)["data"]["output"]
    assert dedupe_id == "goapi:" + hashlib.sha256(raw).hexdigest()


async def test_midjourney_proxy_callbacks_are_stored_without_the_echoed_notify_hook(gateway):
    task_id = uuid.uuid4()
    # A fork's task, sent to a callback URL given out before (token and shared secret).
    raw = _echoing("midjourney_proxy", "fork-webhook-in-progress.json", task_id, "s3cret")
    response = await gateway.client.post(
        _mj_url(task_id, secret="s3cret"), content=raw, headers=JSON
    )
    assert response.status_code == 200
    [(callback, _)] = gateway.callbacks.accepted
    stored = json.dumps(callback.body, ensure_ascii=False)
    assert "s3cret" not in stored
    assert webhook_token("token-key", "midjourney_proxy", task_id) not in stored
    assert callback.body["properties"]["notifyHook"] == "[redacted]"
    assert callback.body["imageUrl"] == json.loads(raw)["imageUrl"]


LONG_TOKEN = "T0k3n-" * 8
SPACED_SECRET = "s3cret-with spaces & symbols!"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Exactly, URL-encoded, inside a URL, deep in lists: gone.
        ({"a": SPACED_SECRET}, {"a": "[redacted]"}),
        ({"a": "https://x/?s=s3cret-with+spaces+%26+symbols%21"}, {"a": "[redacted]"}),
        (
            {"a": [{"b": [f"https://x/cb?token={LONG_TOKEN}&x=1"]}]},
            {"a": [{"b": ["[redacted]"]}]},
        ),
        # Ordinary values stay, numbers, nulls and keys included.
        (
            {"status": "completed", "n": 3, LONG_TOKEN: None},
            {"status": "completed", "n": 3, LONG_TOKEN: None},
        ),
    ],
)
def test_scrubbing_takes_out_every_form_of_our_credentials(body, expected):
    assert without_credentials(body, [LONG_TOKEN, SPACED_SECRET]) == expected


def test_a_short_secret_only_goes_as_a_whole_value():
    # A weak secret must not blank out words that happen to contain it.
    assert without_credentials({"s": "completed", "t": "plete"}, ["plete"]) == {
        "s": "completed", "t": "[redacted]",
    }  # fmt: skip


# --- Replicate: Standard Webhooks signature and per-task token ----------------------------

WHSEC_KEY = b"replicate-signing-key-32-bytes!!"
WHSEC = "whsec_" + base64.b64encode(WHSEC_KEY).decode()
PREDICTION = {
    "id": "gm3qorzdhgbfurvjtvhg6dckhu", "model": "black-forest-labs/flux-schnell",
    "version": "dp-4d0bcc010b3049749a251855f12800be", "status": "succeeded",
    "input": {"prompt": "a paper boat"}, "output": ["https://replicate.delivery/x/out-0.webp"],
    "error": None, "logs": "", "metrics": {"predict_time": 1.2},
}  # fmt: skip


def _sign(raw: bytes, msg_id: str, timestamp: int, key: bytes = WHSEC_KEY) -> str:
    """Standard Webhooks, computed here independently of the library the gateway uses."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _signed(raw: bytes, msg_id: str = "msg_2a1b", *, age: int = 0, key: bytes = WHSEC_KEY):
    timestamp = int(time.time()) - age
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": _sign(raw, msg_id, timestamp, key),
        "content-type": "application/json",
    }


def _rep_url(task_id, token=None):
    token = token or webhook_token("token-key", "replicate", task_id)
    return f"/webhooks/replicate/{task_id}?token={token}"


@pytest.fixture
def replicate_gateway(gateway):
    assert gateway.settings.replicate_webhook_secret.get_secret_value() == WHSEC
    return gateway


async def test_signed_replicate_callback_is_stored_under_its_webhook_id(replicate_gateway):
    gateway, task_id = replicate_gateway, uuid.uuid4()
    raw = json.dumps(PREDICTION).encode()
    response = await gateway.client.post(_rep_url(task_id), content=raw, headers=_signed(raw))
    assert response.status_code == 200
    [(callback, dedupe_id)] = gateway.callbacks.accepted
    assert (callback.provider, callback.task_id, callback.body) == (
        "replicate", task_id, PREDICTION,
    )  # fmt: skip
    assert dedupe_id == "replicate:msg_2a1b"


async def test_a_retried_replicate_delivery_keeps_its_message_id(replicate_gateway):
    """Replicate retries with the same webhook-id: published under the same Nats-Msg-Id
    (JetStream and the images inbox store it once) and answered 2xx again."""
    gateway, task_id = replicate_gateway, uuid.uuid4()
    raw = json.dumps(PREDICTION).encode()
    headers = _signed(raw, "msg_retry")
    for _ in range(2):
        response = await gateway.client.post(_rep_url(task_id), content=raw, headers=headers)
        assert response.status_code == 200
    assert [d for _, d in gateway.callbacks.accepted] == ["replicate:msg_retry"] * 2


async def test_any_of_several_signatures_may_match(replicate_gateway):
    gateway, task_id = replicate_gateway, uuid.uuid4()
    raw = json.dumps(PREDICTION).encode()
    headers = _signed(raw)
    old = _signed(raw, key=b"the-previous-signing-key")["webhook-signature"]
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    response = await gateway.client.post(_rep_url(task_id), content=raw, headers=headers)
    assert response.status_code == 200


async def test_replicate_callbacks_that_fail_verification_are_401_and_not_stored(
    replicate_gateway,
):
    gateway, task_id = replicate_gateway, uuid.uuid4()
    raw = json.dumps(PREDICTION).encode()
    good = _signed(raw)
    tampered = json.dumps({**PREDICTION, "output": ["https://evil.example/x.png"]}).encode()
    cases = {
        "no signature headers": (raw, {"content-type": "application/json"}),
        "no signature": (raw, {k: v for k, v in good.items() if k != "webhook-signature"}),
        "no id": (raw, {k: v for k, v in good.items() if k != "webhook-id"}),
        "no timestamp": (raw, {k: v for k, v in good.items() if k != "webhook-timestamp"}),
        "tampered body": (tampered, good),
        "signed by another key": (raw, _signed(raw, key=b"someone-else's-key")),
        "stale (6 min)": (raw, _signed(raw, age=360)),
        "from the future (6 min)": (raw, _signed(raw, age=-360)),
        "replayed under a new id": (raw, {**good, "webhook-id": "msg_fresh"}),
        "timestamp moved": (raw, {**good, "webhook-timestamp": str(int(time.time()) - 1)}),
        "garbage signature": (raw, {**good, "webhook-signature": "garbage"}),
        "bad base64": (raw, {**good, "webhook-signature": "v1,!!!notbase64"}),
        "unknown version": (
            raw,
            {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")},
        ),
        "non-numeric timestamp": (raw, {**good, "webhook-timestamp": "yesterday"}),
        "not UTF-8": (b"\xff\xfe{}", _signed(b"\xff\xfe{}")),
    }
    for name, (content, headers) in cases.items():
        response = await gateway.client.post(_rep_url(task_id), content=content, headers=headers)
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name
    assert gateway.callbacks.accepted == []


async def test_a_stale_timestamp_is_refused_even_with_a_valid_signature(replicate_gateway):
    gateway, task_id = replicate_gateway, uuid.uuid4()
    raw = json.dumps(PREDICTION).encode()
    fresh = await gateway.client.post(
        _rep_url(task_id), content=raw, headers=_signed(raw, "msg_a", age=240)
    )
    stale = await gateway.client.post(
        _rep_url(task_id), content=raw, headers=_signed(raw, "msg_b", age=301)
    )
    assert (fresh.status_code, stale.status_code) == (200, 401)
    assert [d for _, d in gateway.callbacks.accepted] == ["replicate:msg_a"]


async def test_a_correctly_signed_replicate_callback_needs_its_tasks_token(replicate_gateway):
    gateway, task_id = replicate_gateway, uuid.uuid4()
    raw = json.dumps(PREDICTION).encode()
    for token in (
        webhook_token("token-key", "replicate", uuid.uuid4()),
        webhook_token("token-key", "goapi", task_id),
        webhook_token("guessed-key", "replicate", task_id),
    ):
        response = await gateway.client.post(
            _rep_url(task_id, token), content=raw, headers=_signed(raw)
        )
        assert response.status_code == 401, token
    missing = await gateway.client.post(
        f"/webhooks/replicate/{task_id}", content=raw, headers=_signed(raw)
    )
    assert missing.status_code == 401
    assert gateway.callbacks.accepted == []


async def test_without_a_configured_signing_secret_every_replicate_callback_is_401(gateway):
    settings = gateway.settings.model_copy(update={"replicate_webhook_secret": None})
    gateway.state["context"] = dataclasses.replace(
        gateway.state["context"], settings=settings, webhooks=webhook_verifiers(settings)
    )
    raw = json.dumps(PREDICTION).encode()
    task_id = uuid.uuid4()
    response = await gateway.client.post(_rep_url(task_id), content=raw, headers=_signed(raw))
    assert response.status_code == 401
    assert gateway.callbacks.accepted == []


async def test_a_signed_replicate_body_that_is_not_an_object_is_422(replicate_gateway):
    gateway, task_id = replicate_gateway, uuid.uuid4()
    response = await gateway.client.post(_rep_url(task_id), content=b"[1]", headers=_signed(b"[1]"))
    assert response.status_code == 422
    assert gateway.callbacks.accepted == []


async def test_replicate_storage_down_is_503(replicate_gateway):
    gateway = replicate_gateway
    gateway.callbacks.fail = True
    raw = json.dumps(PREDICTION).encode()
    response = await gateway.client.post(_rep_url(uuid.uuid4()), content=raw, headers=_signed(raw))
    assert response.status_code == 503


def test_an_unusable_signing_secret_is_refused_at_start_up():
    for bad in ("", "whsec_"):
        with pytest.raises(ValidationError):
            GatewaySettings(replicate_webhook_secret=SecretStr(bad))
    assert GatewaySettings(replicate_webhook_secret=SecretStr(WHSEC)).replicate_webhook_secret
