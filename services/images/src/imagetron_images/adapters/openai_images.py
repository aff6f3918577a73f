"""OpenAI Images through the `openai` SDK (`client.images.generate`): synchronous
generation, results staged in our bucket.

It answers only once the images exist (`ImagesResponse {created, data: [{b64_json | url,
revised_prompt}], usage}`); errors come as the SDK's `APIStatusError`s
(`{"error": {"message", "type", "param", "code"}}`). The request depends on the model's
family (the model is a setting, names change often):

- `gpt-image-*`: `n` up to 4; 1024x1024, 1536x1024, 1024x1536; `b64_json` only (no
  `response_format`);
- `dall-e-3`: `n` = 1; 1024x1024, 1792x1024, 1024x1792; asked for `b64_json`;
- `dall-e-2`: `n` up to 4; 1024x1024 (squares only); asked for `b64_json`;
- any other model (an OpenAI-compatible server's): as gpt-image, and whatever it answers:
  `b64_json`, an `http(s)` URL or a `data:` URL.

There are no callbacks and no task to poll: `submit` stages the decoded images in S3 under
`staging/{owner_id}/{task_id}/{nonce}/{n}.png` and returns a provider task id from which
`fetch` rebuilds the completed report (versions only, no grid), so the submission handler
completes the task right after accepting it (Capability.synchronous). Images that came as
URLs are not fetched here (a failed download would cost a new generation): their URLs are
kept in a staged manifest (`…/{nonce}/sources.json`, task id `…/{nonce}/u{count}`) and
persisted like any provider's, through the SSRF-guarded downloader. The base64 never leaves
this adapter: rows and events only carry `staged://` URLs (or the server's own URLs).
Persistence deletes each staged image once it is stored (`app.images.persist_image`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from uuid import UUID, uuid4

from imagetron_contracts.models.images import TaskCommand
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderBusy,
    ProviderRejected,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus, ProviderUpdate
from imagetron_images.domain.providers import STAGED_SCHEME, staging_prefix
from imagetron_platform.first_use import OnFirstUse

if TYPE_CHECKING:  # the SDK is imported with the client, at the first generation
    import openai
    from openai import AsyncOpenAI
    from openai.types import ImagesResponse

log = logging.getLogger(__name__)

PROVIDER = "openai"
# Text to image only; the request is over before a cancel could reach it.
CAPABILITIES = frozenset({Capability.imagine, Capability.synchronous})
SQUARE, LANDSCAPE, PORTRAIT = "1024x1024", "1536x1024", "1024x1536"
MAX_IMAGES = 4  # a task has versions 1-4
MANIFEST = "sources.json"
# 429s that are not about load: waiting will not help.
_PERMANENT_429_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_TASK_ID = re.compile(
    r"^(?P<owner>[0-9a-f-]{36})/(?P<task>[0-9a-f-]{36})/(?P<nonce>[0-9a-f]{32})/"
    r"(?P<sources>u?)(?P<n>[1-4])$"
)
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


class StagingStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...


@dataclass(frozen=True)
class ModelFamily:
    """What one family of image models accepts."""

    name: str
    max_images: int
    sizes: tuple[str, str, str]  # square, landscape, portrait
    response_format: Literal["b64_json"] | None


GPT_IMAGE = ModelFamily("gpt-image", MAX_IMAGES, (SQUARE, LANDSCAPE, PORTRAIT), None)
DALL_E_3 = ModelFamily("dall-e-3", 1, (SQUARE, "1792x1024", "1024x1792"), "b64_json")
DALL_E_2 = ModelFamily("dall-e-2", MAX_IMAGES, (SQUARE, SQUARE, SQUARE), "b64_json")
# An OpenAI-compatible server's own model: gpt-image's request, any answer.
COMPATIBLE = ModelFamily("compatible", MAX_IMAGES, (SQUARE, LANDSCAPE, PORTRAIT), None)


def family_of(model: str) -> ModelFamily:
    name = model.strip().lower()
    if name.startswith(("gpt-image", "chatgpt-image")):
        return GPT_IMAGE
    if name.startswith("dall-e-3"):
        return DALL_E_3
    if name.startswith("dall-e-2"):
        return DALL_E_2
    return COMPATIBLE


def size_for(aspect_ratio: str, family: ModelFamily = GPT_IMAGE) -> str:
    """The family's size closest in shape to `W:H` (square when it cannot be read)."""
    square, landscape, portrait = family.sizes
    width, _, height = aspect_ratio.partition(":")
    try:
        w, h = float(width), float(height)
    except ValueError:
        return square
    if w <= 0 or h <= 0 or w == h:
        return square
    return landscape if w > h else portrait


def openai_client(
    *, base_url: str, api_key: str, timeout_seconds: float, http_client: Any = None
) -> AsyncOpenAI:
    """The SDK client the adapter generates with. `base_url` is the server's root
    (`https://api.openai.com`) or its API root (`…/v1`). Our submission job retries (with
    backoff, then fails the task): the SDK must not retry on its own, every retry is a paid
    generation. The SDK refuses an empty key: without one (OpenAI is not the configured
    provider) a request would be refused by the API, as an unconfigured key should be.

    It imports the SDK (0.6-0.7 s of CPU): the service builds it at its first generation
    with OpenAI (`OnFirstUse`), not at every start."""
    from openai import AsyncOpenAI

    base = base_url.rstrip("/")
    return AsyncOpenAI(
        api_key=api_key or "not-configured",
        base_url=base if base.endswith("/v1") else f"{base}/v1",
        timeout=timeout_seconds,
        max_retries=0,
        http_client=http_client,
    )


def staged_url(owner_id: UUID, task_id: UUID, nonce: str, number: int) -> str:
    return f"{STAGED_SCHEME}{staging_prefix(owner_id, task_id)}{nonce}/{number}.png"


class OpenAIImagesProvider:
    """The `openai` adapter of the ImageProvider port."""

    def __init__(
        self, client: OnFirstUse[AsyncOpenAI], staging: StagingStore, *, model: str, count: int
    ) -> None:
        """`client`: see `openai_client`; built when the first image is generated."""
        self._openai = client
        self._staging = staging
        self._model = model
        self._family = family_of(model)
        self._count = min(max(count, 1), self._family.max_images)

    @property
    def name(self) -> str:
        return PROVIDER

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    async def submit(self, request: ProviderRequest) -> str:
        if request.command is not TaskCommand.imagine:
            raise ProviderRejected(f"OpenAI Images cannot {request.command}: only imagine.")
        sources = _sources(await self._generate(request))
        nonce = uuid4().hex
        urls: list[str] = []
        for number, source in enumerate(sources, start=1):
            if isinstance(source, bytes):
                url = staged_url(request.owner_id, request.task_id, nonce, number)
                await self._staging.put(url.removeprefix(STAGED_SCHEME), source, "image/png")
                urls.append(url)
            else:
                urls.append(source)
        log.info("openai generated %d image(s) for task %s", len(urls), request.task_id)
        task_id = f"{request.owner_id}/{request.task_id}/{nonce}"
        if all(url.startswith(STAGED_SCHEME) for url in urls):
            return f"{task_id}/{len(urls)}"
        manifest = f"{staging_prefix(request.owner_id, request.task_id)}{nonce}/{MANIFEST}"
        await self._staging.put(manifest, json.dumps(urls).encode(), "application/json")
        return f"{task_id}/u{len(urls)}"

    async def cancel(self, provider_task_id: str) -> None:
        raise ProviderRejected("OpenAI Images tasks finish within their request.")

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        found = _TASK_ID.match(provider_task_id)
        if found is None:
            raise MalformedProviderMessage(f"Not an OpenAI Images task id: {provider_task_id!r}")
        owner, task, nonce, count = (
            UUID(found["owner"]), UUID(found["task"]), found["nonce"], int(found["n"]),
        )  # fmt: skip
        if found["sources"]:
            urls = await self._manifest(owner, task, nonce, count)
        else:
            urls = [staged_url(owner, task, nonce, number) for number in range(1, count + 1)]
        return ProviderUpdate(
            provider_task_id=provider_task_id,
            command=TaskCommand.imagine,
            status=ProviderStatus.completed,
            split_urls=tuple(urls),
        )

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        raise MalformedProviderMessage("OpenAI Images sends no callbacks.")

    async def _manifest(self, owner: UUID, task: UUID, nonce: str, count: int) -> list[str]:
        key = f"{staging_prefix(owner, task)}{nonce}/{MANIFEST}"
        try:
            urls = json.loads(await self._staging.get(key))
        except ValueError as exc:
            raise MalformedProviderMessage(f"The staged manifest {key} is not JSON.") from exc
        if not (isinstance(urls, list) and len(urls) == count and all(map(_is_url, urls))):
            raise MalformedProviderMessage(f"The staged manifest {key} is not {count} URLs.")
        return urls

    async def _generate(self, request: ProviderRequest) -> ImagesResponse:
        client = await self._openai.get()
        import openai  # imported by now, with the client
        from openai import omit

        family = self._family
        try:
            return await client.images.generate(
                model=self._model,
                prompt=request.prompt_text,
                n=self._count,
                size=size_for(request.aspect_ratio, family),
                response_format=family.response_format or omit,
            )
        except openai.APITimeoutError as exc:
            raise ProviderUnavailable(f"OpenAI did not answer in time: {exc}") from exc
        except openai.APIConnectionError as exc:
            raise ProviderUnavailable(f"OpenAI could not be reached: {exc!r}") from exc
        except openai.APIStatusError as exc:
            raise _classified(exc) from exc
        except openai.APIError as exc:  # an answer the SDK could not read
            raise MalformedProviderMessage(f"OpenAI answered something unreadable: {exc}") from exc


def _classified(exc: openai.APIStatusError) -> Exception:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or exc.response.reason_phrase or exc.message)
    code = error.get("code") or error.get("type")
    text = f"({status}{f', {code}' if code else ''}): {message}"
    if status == 429 and code not in _PERMANENT_429_CODES:
        return ProviderBusy(f"OpenAI is at capacity {text}")
    if status >= 500 or status in (408, 409):
        return ProviderUnavailable(f"OpenAI is unavailable {text}")
    return ProviderRejected(f"OpenAI refused the request {text}")


def _sources(answer: ImagesResponse) -> Sequence[bytes | str]:
    """Each image's bytes (from `b64_json` or a `data:` URL) or its `http(s)` URL."""
    from openai.types import ImagesResponse

    # The SDK hands over what it could not read as it came (a list, a string, …).
    if not isinstance(answer, ImagesResponse) or not answer.data:
        raise MalformedProviderMessage("OpenAI answered without images (`data`).")
    sources: list[bytes | str] = []
    for item in answer.data[:MAX_IMAGES]:
        encoded, url = getattr(item, "b64_json", None), getattr(item, "url", None)
        if not encoded and isinstance(url, str) and _DATA_URL.match(url):
            encoded = url.split(",", 1)[1]
        if isinstance(encoded, str) and encoded:
            try:
                sources.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise MalformedProviderMessage(f"OpenAI answered invalid base64: {exc}") from exc
        elif _is_url(url) and not str(url).startswith(STAGED_SCHEME):
            sources.append(str(url))
        else:
            raise MalformedProviderMessage("OpenAI answered an image without `b64_json` or URL.")
    return sources


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://", STAGED_SCHEME))
