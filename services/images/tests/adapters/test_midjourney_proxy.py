"""The midjourney-proxy adapter against a fake proxy answering the documented payloads
(novicezk `SubmitResultVO` / `Task`; trueai-org's buttons, split images, cancel and extra
statuses), over real HTTP. Both follow-up APIs run against the sandbox in
tests/integration/test_midjourney_proxy.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imagetron_contracts.models.images import ProcessMode, TaskCommand
from imagetron_images.adapters.midjourney_proxy import (
    MidjourneyProxyApi,
    MidjourneyProxyProvider,
)
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderRejected,
    ProviderTaskNotFound,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus
from imagetron_platform.webhook_tokens import verify_webhook_token

API_SECRET = "mj-secret"
SECRET = "test-webhook-secret"
TOKEN_KEY = "test-token-key"


def request(**overrides: Any) -> ProviderRequest:
    fields: dict[str, Any] = {
        "task_id": uuid4(),
        "owner_id": uuid4(),
        "command": TaskCommand.imagine,
        "prompt_text": "a paper boat on a puddle",
        "aspect_ratio": "16:9",
        "process_mode": ProcessMode.relax,
    }
    return ProviderRequest(**(fields | overrides))


def submitted(code: int = 1, result: Any = "1712345678901234", **extra: Any) -> dict[str, Any]:
    descriptions = {1: "Submit success", 21: "Task already exists", 22: "In queue, 2 ahead",
                    23: "Queue is full, please try again later", 24: "Banned prompt"}  # fmt: skip
    return {"code": code, "description": descriptions.get(code, "error"), "result": result,
            "properties": {"discordInstanceId": "1118138338562560102"}, **extra}  # fmt: skip


def task(status: str, **fields: Any) -> dict[str, Any]:
    """A task as the original proxy's `GET /mj/task/{id}/fetch` returns it and its
    `notifyHook` receives it (no `buttons`: that is a fork's field)."""
    return {
        "id": "1712345678901234", "action": "IMAGINE", "status": status,
        "prompt": "a paper boat on a puddle --ar 16:9 --relax",
        "promptEn": "a paper boat on a puddle --ar 16:9 --relax",
        "description": "/imagine a paper boat on a puddle --ar 16:9 --relax",
        "state": "our-task-id", "submitTime": 1712345678901, "startTime": None,
        "finishTime": None, "progress": "", "imageUrl": None, "failReason": None,
        "properties": {"finalPrompt": "a paper boat on a puddle --ar 16:9 --relax"},
        **fields,
    }  # fmt: skip


HASH = "4b9a3b1e-5a57-4f8c-9d0e-2c1f0a9b8c7d"
BUTTONS = [
    {"customId": f"MJ::JOB::upsample::{i}::{HASH}", "emoji": "", "label": f"U{i}",
     "style": 2, "type": 2}
    for i in range(1, 5)
] + [{"customId": f"MJ::JOB::reroll::0::{HASH}::SOLO", "emoji": "🔄", "label": "",
      "style": 2, "type": 2}] + [
    {"customId": f"MJ::JOB::variation::{i}::{HASH}", "emoji": "", "label": f"V{i}",
     "style": 2, "type": 2}
    for i in range(1, 5)
]  # fmt: skip


def fork_task(status: str, **fields: Any) -> dict[str, Any]:
    """A trueai-org task: `buttons` (empty until it succeeds), `imageUrls`, `parentId`."""
    return task(status, **({"buttons": [], "imageUrls": None, "parentId": None} | fields))


class FakeProxy:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer: tuple[int, Any] = (200, submitted())
        self.task: Any = task("SUCCESS", progress="100%", imageUrl="https://cdn/grid.png")
        self.has_cancel = False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/mj/submit/{kind}")
        async def submit(kind: str, request: Request) -> Response:
            self.received.append({
                "path": request.url.path, "headers": dict(request.headers),
                "body": await request.json(),
            })  # fmt: skip
            status, body = self.answer
            if isinstance(body, str):
                return Response(body, status_code=status, media_type="text/html")
            return JSONResponse(body, status_code=status)

        @app.get("/mj/task/{task_id}/fetch")
        async def fetch(task_id: str, request: Request) -> JSONResponse:
            self.received.append({"path": request.url.path, "headers": dict(request.headers)})
            return JSONResponse(self.task)

        @app.post("/mj/task/{task_id}/cancel")
        async def cancel(task_id: str, request: Request) -> Response:
            self.received.append({"path": request.url.path, "headers": dict(request.headers)})
            # A fork answers 200 with no body; the original has no such route.
            return Response(status_code=200 if self.has_cancel else 404)

        return app


def make(client: httpx.AsyncClient, url: str, api: MidjourneyProxyApi) -> MidjourneyProxyProvider:
    return MidjourneyProxyProvider(
        client, base_url=url + "/", api_secret=API_SECRET,
        webhook_public_base_url="https://gateway.example/",
        webhook_token_key=TOKEN_KEY, api=api,
    )  # fmt: skip


@pytest.fixture(scope="module")
async def fake_proxy(serve):
    """One server for the module; each test starts from a fresh fake (`served`)."""
    fake = FakeProxy()
    async with serve(fake.app()) as url, httpx.AsyncClient(timeout=5) as client:
        yield fake, lambda api: make(client, url, api)


@pytest.fixture
def served(fake_proxy):
    fake, build = fake_proxy
    fake.reset()
    return fake, build


@pytest.fixture
def proxy(served):
    fake, build = served
    return fake, build(MidjourneyProxyApi.auto)


EVERY_COMMAND = {Capability.imagine, Capability.reroll, Capability.variation, Capability.upscale}


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (MidjourneyProxyApi.auto, EVERY_COMMAND | {Capability.cancel}),
        (MidjourneyProxyApi.action, EVERY_COMMAND | {Capability.cancel}),
        # The original proxy has no cancel.
        (MidjourneyProxyApi.change, EVERY_COMMAND),
    ],
)
def test_declares_every_midjourney_command_and_cancel_where_it_exists(served, api, expected):
    _, build = served
    provider = build(api)
    assert provider.name == "midjourney_proxy"
    assert provider.capabilities == expected


async def test_imagine_sends_the_documented_request(proxy) -> None:
    fake, provider = proxy
    req = request()
    assert await provider.submit(req) == "1712345678901234"
    (received,) = fake.received
    assert received["path"] == "/mj/submit/imagine"
    assert received["headers"]["mj-api-secret"] == API_SECRET
    body = received["body"]
    assert body["prompt"] == "a paper boat on a puddle --ar 16:9 --relax"
    assert (body["base64Array"], body["state"]) == ([], str(req.task_id))
    hook = urlsplit(body["notifyHook"])
    assert (hook.scheme, hook.netloc, hook.path) == (
        "https", "gateway.example", f"/webhooks/midjourney_proxy/{req.task_id}",
    )  # fmt: skip
    query = parse_qs(hook.query)
    # The proxy echoes and logs this URL: the task token alone, no shared secret.
    assert set(query) == {"token"}
    assert verify_webhook_token(TOKEN_KEY, "midjourney_proxy", req.task_id, query["token"][0])


@pytest.mark.parametrize(
    ("command", "index", "expected"),
    [
        (TaskCommand.upscale, 2, {"action": "UPSCALE", "index": 2}),
        (TaskCommand.variation, 4, {"action": "VARIATION", "index": 4}),
        (TaskCommand.reroll, None, {"action": "REROLL"}),
    ],
)
async def test_follow_ups_are_changes_of_an_original_proxys_task(
    proxy, command, index, expected
) -> None:
    fake, provider = proxy  # `auto`, and the origin has no buttons: the original proxy
    await provider.submit(
        request(command=command, origin_provider_task_id="1712000000000000", origin_index=index)
    )
    fetched, received = fake.received
    assert fetched["path"] == "/mj/task/1712000000000000/fetch"
    assert received["path"] == "/mj/submit/change"
    body = received["body"]
    assert {k: v for k, v in body.items() if k not in ("notifyHook", "state")} == {
        "taskId": "1712000000000000", **expected,
    }  # fmt: skip
    assert "/webhooks/midjourney_proxy/" in body["notifyHook"]


async def test_configured_change_api_asks_nothing_first(served) -> None:
    fake, build = served
    await build(MidjourneyProxyApi.change).submit(
        request(command=TaskCommand.upscale, origin_provider_task_id="1712", origin_index=1)
    )
    assert [r["path"] for r in fake.received] == ["/mj/submit/change"]


FOLLOW_UPS = [
    (TaskCommand.upscale, 2, f"MJ::JOB::upsample::2::{HASH}"),
    (TaskCommand.variation, 4, f"MJ::JOB::variation::4::{HASH}"),
    (TaskCommand.reroll, None, f"MJ::JOB::reroll::0::{HASH}::SOLO"),
]


@pytest.mark.parametrize("api", [MidjourneyProxyApi.auto, MidjourneyProxyApi.action])
@pytest.mark.parametrize(("command", "index", "custom_id"), FOLLOW_UPS)
async def test_a_forks_follow_up_presses_the_origins_button(
    served, api, command, index, custom_id
) -> None:
    fake, build = served
    fake.task = fork_task("SUCCESS", progress="100%", imageUrl="https://cdn/g.png", buttons=BUTTONS)
    await build(api).submit(
        request(command=command, origin_provider_task_id="1712000000000000", origin_index=index)
    )
    _, received = fake.received
    assert received["path"] == "/mj/submit/action"
    body = received["body"]
    assert {k: v for k, v in body.items() if k not in ("notifyHook", "state")} == {
        "taskId": "1712000000000000", "customId": custom_id,
    }  # fmt: skip


@pytest.mark.parametrize(("command", "index", "custom_id"), FOLLOW_UPS)
async def test_without_buttons_a_forks_custom_id_is_built_from_the_message_hash(
    served, command, index, custom_id
) -> None:
    fake, build = served
    fake.task = fork_task("SUCCESS", properties={"messageHash": HASH})
    await build(MidjourneyProxyApi.auto).submit(
        request(command=command, origin_provider_task_id="1712", origin_index=index)
    )
    assert fake.received[-1]["body"]["customId"] == custom_id


async def test_the_action_api_without_a_button_or_hash_is_refused(served) -> None:
    fake, build = served
    with pytest.raises(ProviderRejected, match="no upscale button"):
        await build(MidjourneyProxyApi.action).submit(
            request(command=TaskCommand.upscale, origin_provider_task_id="1712", origin_index=1)
        )
    assert [r["path"] for r in fake.received] == ["/mj/task/1712/fetch"]


async def test_a_forks_cancel_answers_nothing_and_succeeds(proxy) -> None:
    fake, provider = proxy
    fake.has_cancel = True
    await provider.cancel("1712345678901234")
    assert fake.received[-1]["path"] == "/mj/task/1712345678901234/cancel"
    assert fake.received[-1]["headers"]["mj-api-secret"] == API_SECRET


@pytest.mark.parametrize("code", [1, 21, 22])
async def test_accepted_existing_and_queued_submissions_return_the_task_id(proxy, code) -> None:
    fake, provider = proxy
    fake.answer = (200, submitted(code, result="1712999999999999"))
    assert await provider.submit(request()) == "1712999999999999"


async def test_a_numeric_task_id_is_read_as_text(proxy) -> None:
    fake, provider = proxy
    fake.answer = (200, submitted(1, result=1712999999999999))
    assert await provider.submit(request()) == "1712999999999999"


async def test_a_full_queue_is_transient(proxy) -> None:
    fake, provider = proxy
    fake.answer = (200, submitted(23, result=None))
    with pytest.raises(ProviderUnavailable, match="busy"):
        await provider.submit(request())


async def test_a_banned_prompt_is_a_permanent_refusal_with_the_reason(proxy) -> None:
    fake, provider = proxy
    fake.answer = (200, submitted(24, result=None, properties={
        "promptEn": "a bloody boat", "bannedWord": "bloody",
    }))  # fmt: skip
    with pytest.raises(ProviderRejected, match=r"banned prompt \(banned word: bloody\)"):
        await provider.submit(request())


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, submitted(4, result=None, description="prompt不能为空"), ProviderRejected),
        (200, submitted(3, result=None, description="关联任务不存在或已失效"), ProviderRejected),
        (200, submitted(9, result=None, description="无可用的账号实例"), ProviderUnavailable),
        (200, submitted(1, result=None), MalformedProviderMessage),
        (200, submitted(1, result=""), MalformedProviderMessage),
        (200, ["not", "an", "object"], MalformedProviderMessage),
        (401, {"code": 401, "description": "unauthorized"}, ProviderRejected),
        (429, {}, ProviderUnavailable),
        (502, "<html>bad gateway</html>", ProviderUnavailable),
    ],
)
async def test_provider_errors_are_classified(proxy, status, body, error) -> None:
    fake, provider = proxy
    fake.answer = (status, body)
    with pytest.raises(error):
        await provider.submit(request())


async def test_a_follow_up_without_its_origin_is_refused_before_any_call(proxy) -> None:
    fake, provider = proxy
    with pytest.raises(ProviderRejected):
        await provider.submit(request(command=TaskCommand.upscale, origin_index=1))
    assert fake.received == []


async def test_fetch_reads_the_task(proxy) -> None:
    fake, provider = proxy
    update = await provider.fetch("1712345678901234")
    assert fake.received[0]["path"] == "/mj/task/1712345678901234/fetch"
    assert fake.received[0]["headers"]["mj-api-secret"] == API_SECRET
    assert (update.status, update.image_url, update.progress) == (
        ProviderStatus.completed, "https://cdn/grid.png", 100,
    )  # fmt: skip


async def test_fetching_an_unknown_task_says_it_is_not_found(proxy) -> None:
    fake, provider = proxy
    fake.task = None  # the proxy answers an empty body for an unknown id
    with pytest.raises(ProviderTaskNotFound):
        await provider.fetch("nope")


async def test_the_original_proxy_cannot_cancel(proxy) -> None:
    _, provider = proxy
    with pytest.raises(ProviderRejected, match="no cancel endpoint"):
        await provider.cancel("1712345678901234")


async def test_an_unreachable_proxy_is_transient() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        provider = MidjourneyProxyProvider(
            client, base_url="http://127.0.0.1:9", api_secret=None,
            webhook_public_base_url="http://gw", webhook_token_key=TOKEN_KEY,
        )  # fmt: skip
        with pytest.raises(ProviderUnavailable):
            await provider.submit(request())


# --- callbacks: the whole task, as POSTed to notifyHook ---------------------------------

_PARSER = MidjourneyProxyProvider(
    httpx.AsyncClient(), base_url="http://x", api_secret=None, webhook_public_base_url="http://g",
    webhook_token_key="t",
)  # fmt: skip


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("NOT_START", ProviderStatus.queued),
        ("SUBMITTED", ProviderStatus.queued),
        ("MODAL", ProviderStatus.queued),
        ("IN_PROGRESS", ProviderStatus.running),
        ("SUCCESS", ProviderStatus.completed),
        ("FAILURE", ProviderStatus.failed),
        ("CANCEL", ProviderStatus.cancelled),
    ],
)
def test_statuses(status: str, expected: ProviderStatus) -> None:
    assert _PARSER.parse_callback(task(status)).status is expected


def test_progress_reports_percent_and_the_partial_render() -> None:
    update = _PARSER.parse_callback(
        task("IN_PROGRESS", progress="62%", imageUrl="https://cdn/partial.webp")
    )
    assert (update.progress, update.preview_url) == (62, "https://cdn/partial.webp")
    assert (update.image_url, update.split_urls) == (None, ())


@pytest.mark.parametrize(("raw", "percent"), [("0%", 0), ("100%", 100), ("", None), (None, None)])
def test_progress_strings(raw: Any, percent: int | None) -> None:
    assert _PARSER.parse_callback(task("IN_PROGRESS", progress=raw)).progress == percent


def test_a_finished_imagine_carries_the_grid_only() -> None:
    update = _PARSER.parse_callback(task(
        "SUCCESS", progress="100%", imageUrl="https://cdn/grid.png", finishTime=1712345699999,
        buttons=[{"customId": "MJ::JOB::upsample::1::ab12", "emoji": "", "label": "U1",
                  "type": 2, "style": 2}],
    ))  # fmt: skip
    assert (update.command, update.image_url, update.split_urls) == (
        TaskCommand.imagine, "https://cdn/grid.png", (),
    )  # fmt: skip
    assert update.preview_url is None


def test_a_finished_upscale_is_one_image() -> None:
    update = _PARSER.parse_callback(
        task("SUCCESS", action="UPSCALE", progress="100%", imageUrl="https://cdn/u2.png")
    )
    assert (update.command, update.image_url) == (TaskCommand.upscale, "https://cdn/u2.png")


def test_a_failure_carries_the_fail_reason() -> None:
    update = _PARSER.parse_callback(task("FAILURE", failReason="Banned prompt detected: bloody"))
    assert update.error == "Banned prompt detected: bloody"


def test_a_cancel_without_reason_says_so() -> None:
    assert "cancelled" in (_PARSER.parse_callback(task("CANCEL")).error or "")


def test_a_forks_cancel_endpoint_fails_the_task_with_a_reason_that_means_cancelled() -> None:
    update = _PARSER.parse_callback(fork_task("FAILURE", failReason="取消任务"))
    assert update.status is ProviderStatus.cancelled


def test_a_forks_finished_grid_carries_its_four_split_images() -> None:
    splits = [{"url": f"https://cdn.midjourney.com/{HASH}/0_{i}.png",
               "thumbnail": f"https://cdn.midjourney.com/{HASH}/0_{i}_640_N.webp"}
              for i in range(4)]  # fmt: skip
    update = _PARSER.parse_callback(fork_task(
        "SUCCESS", progress="100%", imageUrl="https://cdn/grid.png", buttons=BUTTONS,
        imageUrls=splits,
    ))  # fmt: skip
    assert update.image_url == "https://cdn/grid.png"
    assert update.split_urls == tuple(split["url"] for split in splits)


@pytest.mark.parametrize(
    ("action", "custom_id", "command"),
    [
        # A fork reports a reroll with its origin's action, and the button it came from.
        ("IMAGINE", f"MJ::JOB::reroll::0::{HASH}::SOLO", TaskCommand.reroll),
        ("VARIATION", f"MJ::JOB::reroll::0::{HASH}::SOLO", TaskCommand.reroll),
        ("UPSCALE", f"MJ::JOB::upsample::3::{HASH}", TaskCommand.upscale),
        ("VARIATION", f"MJ::JOB::variation::1::{HASH}", TaskCommand.variation),
        ("IMAGINE", None, TaskCommand.imagine),
        ("REROLL", None, TaskCommand.reroll),
    ],
)
def test_a_forks_follow_up_is_known_by_the_button_it_came_from(action, custom_id, command):
    properties = {"custom_id": custom_id} if custom_id else {}
    update = _PARSER.parse_callback(fork_task("SUBMITTED", action=action, properties=properties))
    assert update.command is command


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "1", "status": "SUCCESS"},
        task("EXPLODED"),
        task("SUCCESS", action="DESCRIBE"),
        task("SUCCESS", action="BLEND"),
    ],
)
def test_malformed_callbacks_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedProviderMessage):
        _PARSER.parse_callback(body)
