"""Every recorded provider payload in `tests/fixtures/providers/<provider>/`, run through its
adapter: what the providers and their client libraries really send must parse into the
right status, progress, images and error. Each folder's README says where each payload
came from; its `expected.json` says, per file, which adapter call receives it and what
comes out (one case, or a list when the same payload reaches the adapter in several ways).
A payload file without an expectation (or the reverse) fails the suite.

The adapters' HTTP goes through a `MockTransport` (httpx's, or httpx2's for the `openai`
SDK) that answers with the recorded payload (and, for a call that needs several requests,
with the other payloads the case names), so no port is opened.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import httpx
import httpx2
import pytest

from imagetron_contracts.models.images import ProcessMode, TaskCommand, VariationStrength
from imagetron_images.adapters.goapi import GoApiProvider
from imagetron_images.adapters.midjourney_proxy import MidjourneyProxyProvider
from imagetron_images.adapters.openai_images import OpenAIImagesProvider, openai_client
from imagetron_images.adapters.replicate import ReplicateProvider
from imagetron_images.app import ports
from imagetron_images.app.ports import ImageProvider
from imagetron_images.domain import ProviderRequest
from imagetron_platform.first_use import OnFirstUse

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers"
TASK_ID = UUID("2f1e0a8c-6a7b-4c39-9d55-0d1e2f3a4b5c")
OWNER_ID = UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")


@asynccontextmanager
async def over_httpx(replay: Replay) -> AsyncIterator[httpx.AsyncClient]:
    replay.http = httpx
    async with httpx.AsyncClient(transport=httpx.MockTransport(replay)) as client:
        yield client


def goapi(client: httpx.AsyncClient) -> ImageProvider:
    return GoApiProvider(
        client, base_url="https://api.goapi.example", api_key="k",
        webhook_public_base_url="https://imagetron.example", webhook_secret="s",
        webhook_token_key="t",
    )  # fmt: skip


def replicate(client: httpx.AsyncClient) -> ImageProvider:
    return ReplicateProvider(
        client, base_url="https://api.replicate.com", api_token="r8_test",
        model="black-forest-labs/flux-schnell", version=None, extra_input={"num_outputs": 4},
        webhook_public_base_url="https://imagetron.example", webhook_token_key="t",
    )  # fmt: skip


def midjourney_proxy(client: httpx.AsyncClient) -> ImageProvider:
    # `auto`: the recorded origin task says which follow-up API the proxy has.
    return MidjourneyProxyProvider(
        client, base_url="https://mj-proxy.example", api_secret="mj",
        webhook_public_base_url="https://imagetron.example", webhook_token_key="t",
    )  # fmt: skip


class Staging:
    """Our bucket's staging area, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    async def get(self, key: str) -> bytes:
        return self.objects[key]


@asynccontextmanager
async def openai(replay: Replay) -> AsyncIterator[ImageProvider]:
    replay.http = httpx2  # the `openai` SDK's HTTP library
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(replay)) as http:
        client = openai_client(
            base_url="https://api.openai.com", api_key="sk-test", timeout_seconds=5,
            http_client=http,
        )  # fmt: skip
        model = replay.case.get("model", "gpt-image-1")
        yield OpenAIImagesProvider(OnFirstUse(lambda: client), Staging(), model=model, count=4)


def on_httpx(
    build: Callable[[httpx.AsyncClient], ImageProvider],
) -> Callable[[Replay], AbstractAsyncContextManager[ImageProvider]]:
    @asynccontextmanager
    async def adapter(replay: Replay) -> AsyncIterator[ImageProvider]:
        async with over_httpx(replay) as client:
            yield build(client)

    return adapter


ADAPTERS: Mapping[str, Callable[[Replay], AbstractAsyncContextManager[ImageProvider]]] = {
    "goapi": on_httpx(goapi),
    "midjourney_proxy": on_httpx(midjourney_proxy),
    "openai": openai,
    "replicate": on_httpx(replicate),
}


def expectations(provider: str) -> dict[str, list[dict[str, Any]]]:
    found = json.loads((FIXTURES / provider / "expected.json").read_text())
    return {name: case if isinstance(case, list) else [case] for name, case in found.items()}


def cases() -> list[Any]:
    return [
        pytest.param(provider, name, case, id=f"{provider}-{name}-{case['call']}")
        for provider in sorted(ADAPTERS)
        for name, listed in sorted(expectations(provider).items())
        for case in listed
    ]


def load(provider: str, name: str) -> Any:
    return json.loads((FIXTURES / provider / name).read_text())


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_every_payload_has_an_expectation_and_a_source(provider: str) -> None:
    folder = FIXTURES / provider
    expected = json.loads((folder / "expected.json").read_text())
    payloads = {p.name for p in folder.glob("*.json")} - {"expected.json"}
    assert payloads == set(expected)
    readme = (folder / "README.md").read_text()
    assert [name for name in sorted(payloads) if name not in readme] == []


class Replay:
    """Answers each request with a recorded payload: the case's own, unless the case
    routes that request (`"METHOD /path-prefix"`) to another file."""

    def __init__(self, provider: str, name: str, case: Mapping[str, Any]) -> None:
        self.provider = provider
        self.case = case
        self.default = (case.get("http_status", 200), load(provider, name))
        self.routes: dict[str, str] = dict(case.get("routes", {}))
        self.requests: list[Any] = []
        self.http: ModuleType = httpx  # or httpx2: what the adapter's client speaks

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        for route, file in self.routes.items():
            method, _, prefix = route.partition(" ")
            if request.method == method and request.url.path.startswith(prefix):
                status, body = 200, load(self.provider, file)
                break
        else:
            status, body = self.default
        if isinstance(body, str):
            return self.http.Response(status, text=body)
        return self.http.Response(status, json=body)


def provider_request(case: Mapping[str, Any]) -> ProviderRequest:
    given = case.get("request", {})
    return ProviderRequest(
        task_id=TASK_ID,
        owner_id=OWNER_ID,
        command=TaskCommand(given.get("command", "imagine")),
        prompt_text=given.get("prompt_text", "a pear on a linen cloth, morning light"),
        aspect_ratio=given.get("aspect_ratio", "3:2"),
        process_mode=ProcessMode.fast,
        origin_provider_task_id=given.get("origin_provider_task_id"),
        origin_index=given.get("origin_index"),
        variation_strength=(
            VariationStrength(given["variation_strength"])
            if "variation_strength" in given
            else None
        ),
    )


# A synchronous provider's task id and staged keys carry a random nonce.
_NONCE = re.compile(r"/[0-9a-f]{32}/")


def as_plain(update: Any) -> dict[str, Any]:
    plain = asdict(update)
    return {
        key: (_NONCE.sub("/<nonce>/", value) if isinstance(value, str) else value)
        for key, value in ((k, v.value if hasattr(v, "value") else v) for k, v in plain.items())
    } | {"split_urls": [_NONCE.sub("/<nonce>/", url) for url in plain["split_urls"]]}


@pytest.mark.parametrize(("provider", "name", "case"), cases())
async def test_recorded_payload(provider: str, name: str, case: dict[str, Any]) -> None:
    expect: dict[str, Any] = case["expect"]
    replay = Replay(provider, name, case)
    async with ADAPTERS[provider](replay) as adapter:
        call = case["call"]
        raises = expect.get("raises")
        if raises is not None:
            with pytest.raises(getattr(ports, raises)):
                await _call(adapter, call, name, case, provider)
            return
        outcome = await _call(adapter, call, name, case, provider)
    if call == "submit":
        assert outcome == expect["provider_task_id"]
    elif call == "cancel":
        assert outcome is None
    else:
        assert as_plain(outcome) == expect
    for route, expected_body in case.get("sent", {}).items():
        method, _, path = route.partition(" ")
        sent = [
            json.loads(r.content)
            for r in replay.requests
            if r.method == method and r.url.path == path
        ]
        assert sent, f"nothing was sent to {route}"
        assert {k: sent[-1].get(k) for k in expected_body} == expected_body


async def _call(
    adapter: ImageProvider, call: str, name: str, case: Mapping[str, Any], provider: str
) -> Any:
    match call:
        case "callback":
            return adapter.parse_callback(load(provider, name))
        case "fetch":
            return await adapter.fetch(case.get("provider_task_id", "recorded-task"))
        case "cancel":
            return await adapter.cancel(case.get("provider_task_id", "recorded-task"))
        case "submit":
            return await adapter.submit(provider_request(case))
        case "generate":  # a synchronous provider: submit, then read what it made
            return await adapter.fetch(await adapter.submit(provider_request(case)))
    raise AssertionError(f"unknown call {call!r} in expected.json")
