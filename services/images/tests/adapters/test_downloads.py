"""The SSRF guard: every way a URL could reach inside our network is refused before any
connection is made; what is allowed is fetched from the address that was checked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from imagetron_images.adapters.download_slots import FairSlots
from imagetron_images.adapters.downloads import (
    MAX_REDIRECTS,
    SafeImageDownloader,
    forbidden_reason,
    guarded_http_client,
)
from imagetron_images.app.images import source_host
from imagetron_images.app.ports import DownloadFailed, DownloadRefused, SourceGone, TransientError

PUBLIC = "93.184.216.34"

FORBIDDEN = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "cloud metadata",
    "169.254.170.2": "cloud metadata",
    "169.254.1.1": "link-local",
    "100.64.0.1": "shared",
    "100.100.100.200": "cloud metadata",
    "192.0.0.192": "cloud metadata",
    "0.0.0.0": "unspecified",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "198.18.0.1": "private",
    "192.0.2.10": "private",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd00:ec2::254": "cloud metadata",
    "ff02::1": "multicast",
    "2001:db8::1": "private",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "cloud metadata",
    "::ffff:10.0.0.1": "private",
    "2002:7f00:1::": "loopback",  # 6to4 around 127.0.0.1
    "2002:a9fe:a9fe::": "cloud metadata",  # 6to4 around 169.254.169.254
    "64:ff9b::a9fe:a9fe": "cloud metadata",  # NAT64 around 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "loopback",  # Teredo client 127.0.0.1
}


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@pytest.mark.parametrize(("address", "kind"), FORBIDDEN.items())
def test_forbidden_address_classes(address: str, kind: str) -> None:
    reason = forbidden_reason(ip_address(address))
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ip_address(address)) is None


class FakeResolver:
    def __init__(self, names: dict[str, Sequence[str]] | None = None) -> None:
        self.names = {k: [ip_address(a) for a in v] for k, v in (names or {}).items()}
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> Sequence[IPv4Address | IPv6Address]:
        self.lookups.append(host)
        if host not in self.names:
            raise OSError(f"no such host {host}")
        return self.names[host]


def ok(body: bytes = b"image-bytes") -> httpx.Response:
    # A stream, as from the network: the downloader reads the raw body chunk by chunk.
    return httpx.Response(200, stream=httpx.ByteStream(body))


class Recorder:
    """A transport that records every request and never touches the network."""

    def __init__(self, answer: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: ok())

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        result: httpx.Response = self.answer(request)
        return result


def downloader(
    client: httpx.AsyncClient,
    resolver: FakeResolver | None = None,
    *,
    allow: Sequence[str] = (),
    max_bytes: int = 1024,
    timeout: float = 5.0,
    min_rate: float = 0,
    grace: float = 10.0,
) -> SafeImageDownloader:
    return SafeImageDownloader(
        client, resolver=resolver or FakeResolver(), allow_hosts=allow, max_bytes=max_bytes,
        timeout_seconds=timeout, min_bytes_per_second=min_rate, grace_seconds=grace,
    )  # fmt: skip


@pytest.mark.parametrize("address", FORBIDDEN)
async def test_literal_forbidden_addresses_are_never_contacted(address: str) -> None:
    recorder = Recorder()
    async with recorder.client() as client:
        with pytest.raises(DownloadRefused):
            await downloader(client).download(f"http://{url_host(address)}/latest/meta-data")
    assert recorder.requests == []


@pytest.mark.parametrize("address", FORBIDDEN)
async def test_names_resolving_to_forbidden_addresses_are_never_contacted(address: str) -> None:
    recorder = Recorder()
    resolver = FakeResolver({"images.evil.example": [address]})
    async with recorder.client() as client:
        with pytest.raises(DownloadRefused, match=r"images\.evil\.example"):
            await downloader(client, resolver).download("https://images.evil.example/x.png")
    assert recorder.requests == []
    assert resolver.lookups == ["images.evil.example"]


async def test_a_name_with_any_forbidden_address_is_refused() -> None:
    recorder = Recorder()
    resolver = FakeResolver({"mixed.example": [PUBLIC, "10.0.0.5"]})
    async with recorder.client() as client:
        with pytest.raises(DownloadRefused):
            await downloader(client, resolver).download("http://mixed.example/x.png")
    assert recorder.requests == []


async def test_the_connection_goes_to_the_checked_address() -> None:
    recorder = Recorder()
    resolver = FakeResolver({"cdn.example": [PUBLIC]})
    async with recorder.client() as client:
        data = await downloader(client, resolver).download("https://cdn.example/a/b.png?sig=1")
    assert data == b"image-bytes"
    (sent,) = recorder.requests
    assert sent.url.host == PUBLIC, "no second lookup: we connect to the address we checked"
    assert sent.url.path == "/a/b.png"
    assert sent.url.query == b"sig=1"
    assert sent.headers["host"] == "cdn.example"
    assert sent.extensions["sni_hostname"] == "cdn.example", "TLS still checks the name"
    assert resolver.lookups == ["cdn.example"]


async def test_a_non_default_port_stays_in_the_host_header() -> None:
    recorder = Recorder()
    resolver = FakeResolver({"cdn.example": [PUBLIC]})
    async with recorder.client() as client:
        await downloader(client, resolver).download("http://cdn.example:8080/x.png")
    (sent,) = recorder.requests
    assert (sent.url.host, sent.url.port) == (PUBLIC, 8080)
    assert sent.headers["host"] == "cdn.example:8080"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://cdn.example/x.png",
        "gopher://cdn.example:70/_x",
        "data:image/png;base64,AAAA",
        "http:///x.png",
        "not a url",
        "http://user:pass@cdn.example/x.png",
    ],
)
async def test_only_plain_http_urls_are_fetched(url: str) -> None:
    recorder = Recorder()
    resolver = FakeResolver({"cdn.example": [PUBLIC]})
    async with recorder.client() as client:
        with pytest.raises(DownloadRefused):
            await downloader(client, resolver).download(url)
    assert recorder.requests == []


def redirecting(chain: dict[str, str]) -> Any:
    """Answers each path in `chain` with a redirect to its target; anything else: bytes."""

    def answer(request: httpx.Request) -> httpx.Response:
        target = chain.get(request.url.path)
        if target is not None:
            return httpx.Response(302, headers={"location": target})
        return ok()

    return answer


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://[::ffff:169.254.169.254]/latest",
        "http://internal.example/admin",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_to_a_forbidden_place_is_refused(target: str) -> None:
    recorder = Recorder(redirecting({"/x.png": target}))
    resolver = FakeResolver({"cdn.example": [PUBLIC], "internal.example": ["10.0.0.8"]})
    async with recorder.client() as client:
        with pytest.raises(DownloadRefused):
            await downloader(client, resolver).download("http://cdn.example/x.png")
    assert [r.url.host for r in recorder.requests] == [PUBLIC], "the target is never contacted"


async def test_relative_redirects_are_followed_and_rechecked() -> None:
    recorder = Recorder(redirecting({"/x.png": "/y.png", "/y.png": "https://other.example/z"}))
    resolver = FakeResolver({"cdn.example": [PUBLIC], "other.example": ["8.8.8.8"]})
    async with recorder.client() as client:
        assert await downloader(client, resolver).download("http://cdn.example/x.png")
    assert [(r.url.host, r.url.path, r.headers["host"]) for r in recorder.requests] == [
        (PUBLIC, "/x.png", "cdn.example"),
        (PUBLIC, "/y.png", "cdn.example"),
        ("8.8.8.8", "/z", "other.example"),
    ]
    assert resolver.lookups == ["cdn.example", "cdn.example", "other.example"]


async def test_at_most_three_redirects() -> None:
    hops = {f"/{i}": f"/{i + 1}" for i in range(MAX_REDIRECTS)}
    resolver = FakeResolver({"cdn.example": [PUBLIC]})
    async with Recorder(redirecting(hops)).client() as client:
        assert await downloader(client, resolver).download("http://cdn.example/0")
    hops[f"/{MAX_REDIRECTS}"] = f"/{MAX_REDIRECTS + 1}"
    async with Recorder(redirecting(hops)).client() as client:
        with pytest.raises(DownloadRefused, match="redirects"):
            await downloader(client, resolver).download("http://cdn.example/0")


async def test_an_allow_listed_host_and_port_may_be_private() -> None:
    recorder = Recorder()
    async with recorder.client() as client:
        guard = downloader(client, allow=["127.0.0.1:8090"])
        assert await guard.download("http://127.0.0.1:8090/images/x.png")
        # The exemption is for that host and port only.
        for url in ("http://127.0.0.1:8091/x.png", "http://127.0.0.2:8090/x.png"):
            with pytest.raises(DownloadRefused):
                await guard.download(url)
    assert len(recorder.requests) == 1


async def test_an_allow_listed_host_cannot_redirect_elsewhere_inside() -> None:
    recorder = Recorder(redirecting({"/x.png": "http://127.0.0.1:6379/"}))
    async with recorder.client() as client:
        with pytest.raises(DownloadRefused):
            await downloader(client, allow=["127.0.0.1:8090"]).download(
                "http://127.0.0.1:8090/x.png"
            )
    assert len(recorder.requests) == 1


async def test_an_unresolvable_name_is_transient() -> None:
    async with Recorder().client() as client:
        with pytest.raises(DownloadFailed, match="resolve"):
            await downloader(client).download("http://nowhere.example/x.png")


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, SourceGone), (403, DownloadRefused), (410, SourceGone),
     (500, DownloadFailed), (503, DownloadFailed), (429, DownloadFailed), (408, DownloadFailed),
     (304, DownloadRefused)],
)  # fmt: skip
async def test_http_statuses(status: int, error: type[Exception]) -> None:
    resolver = FakeResolver({"cdn.example": [PUBLIC]})
    async with Recorder(lambda r: httpx.Response(status)).client() as client:
        with pytest.raises(error, match=str(status)) as raised:
            await downloader(client, resolver).download("http://cdn.example/x.png")
    # Only an expired source (404/410) sends the image back to its provider for a fresh URL.
    assert isinstance(raised.value, SourceGone) == (status in (404, 410))


# --- against a real server: streaming, the byte cap and the deadline ------------------


def image_server() -> FastAPI:
    app = FastAPI()
    app.state.hosts = []

    @app.get("/exact/{size}")
    async def exact(size: int, request: Request) -> Response:
        app.state.hosts.append(request.headers["host"])
        return Response(b"x" * size, media_type="image/png")

    @app.get("/stream/{size}")
    async def stream(size: int) -> StreamingResponse:
        async def chunks() -> Any:  # no content-length: the cap must hold while streaming
            for _ in range(size // 100):
                yield b"y" * 100

        return StreamingResponse(chunks(), media_type="image/png")

    @app.get("/stall")
    async def stall() -> StreamingResponse:
        async def chunks() -> Any:
            yield b"z"
            await asyncio.sleep(30)

        return StreamingResponse(chunks(), media_type="image/png")

    app.state.trickling = 0

    @app.get("/trickle")
    async def trickle() -> StreamingResponse:
        async def chunks() -> Any:  # 20 bytes a second, for ever
            app.state.trickling += 1
            try:
                while True:
                    yield b"t"
                    await asyncio.sleep(0.05)
            finally:
                app.state.trickling -= 1

        return StreamingResponse(chunks(), media_type="image/png")

    @app.get("/silent")
    async def silent(request: Request) -> Response:
        while not await request.is_disconnected():  # noqa: ASYNC110 - polled by Starlette
            await asyncio.sleep(0.05)
        return Response(b"late", media_type="image/png")

    @app.get("/to-metadata")
    async def to_metadata() -> RedirectResponse:
        return RedirectResponse("http://169.254.169.254/latest/meta-data")

    return app


@pytest.fixture
async def server(serve):
    app = image_server()
    async with serve(app) as url, guarded_http_client() as client:
        port = int(url.rsplit(":", 1)[1])
        resolver = FakeResolver({"sandbox.test": ["127.0.0.1"]})
        yield app, port, client, resolver


async def test_a_named_allow_listed_host_is_fetched_from_its_resolved_address(server) -> None:
    app, port, client, resolver = server
    guard = downloader(client, resolver, allow=[f"sandbox.test:{port}"])
    assert await guard.download(f"http://sandbox.test:{port}/exact/10") == b"x" * 10
    assert app.state.hosts == [f"sandbox.test:{port}"]


async def test_the_byte_cap_holds_with_and_without_a_declared_length(server) -> None:
    _, port, client, resolver = server
    guard = downloader(client, resolver, allow=[f"sandbox.test:{port}"], max_bytes=1000)
    base = f"http://sandbox.test:{port}"
    assert len(await guard.download(f"{base}/exact/1000")) == 1000
    with pytest.raises(DownloadRefused, match="limit"):
        await guard.download(f"{base}/exact/1001")
    assert len(await guard.download(f"{base}/stream/1000")) == 1000
    with pytest.raises(DownloadRefused, match="limit"):
        await guard.download(f"{base}/stream/100000")


async def test_a_stalled_download_times_out(server) -> None:
    _, port, client, resolver = server
    guard = downloader(client, resolver, allow=[f"sandbox.test:{port}"], timeout=0.3)
    with pytest.raises(DownloadFailed, match="longer than"):
        await guard.download(f"http://sandbox.test:{port}/stall")


async def test_a_real_redirect_to_the_metadata_service_is_refused(server) -> None:
    _, port, client, resolver = server
    guard = downloader(client, resolver, allow=[f"sandbox.test:{port}"])
    with pytest.raises(DownloadRefused, match=r"169\.254\.169\.254"):
        await guard.download(f"http://sandbox.test:{port}/to-metadata")


async def test_a_closed_port_is_transient(server) -> None:
    _, _, client, _ = server
    guard = downloader(client, allow=["127.0.0.1:9"])
    with pytest.raises(DownloadFailed):
        await guard.download("http://127.0.0.1:9/x.png")


async def test_the_guarded_client_ignores_proxy_settings(monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.1:3128")
    async with guarded_http_client() as client:
        assert client._mounts == {}
        assert client.follow_redirects is False


# --- slow servers: a minimum pace, and slots shared between owners and hosts ----------


async def test_a_trickling_server_is_cut_off_with_a_retryable_error(server) -> None:
    _, port, client, resolver = server
    guard = downloader(
        client, resolver, allow=[f"sandbox.test:{port}"], max_bytes=10**6, min_rate=1000, grace=0.3
    )
    base = f"http://sandbox.test:{port}"
    loop = asyncio.get_running_loop()
    for path in ("/trickle", "/silent"):  # bytes too slow, or no answer at all
        started = loop.time()
        with pytest.raises(DownloadFailed, match="slower than the minimum of 1000 bytes/s"):
            await guard.download(base + path)
        assert loop.time() - started < 2.0, path
    assert issubclass(DownloadFailed, TransientError)  # retried later, like any outage
    # At the same pace, a server that sends at once is not cut off.
    assert len(await guard.download(f"{base}/exact/100000")) == 100_000


async def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the server's counter has no event
            await asyncio.sleep(0.01)


async def test_one_owners_trickling_images_do_not_hold_up_anothers(server) -> None:
    """Ten slow images of one user take at most its share of the slots; another user's
    image is downloaded at once."""
    app, port, client, resolver = server
    guard = downloader(client, resolver, allow=[f"sandbox.test:{port}"], max_bytes=10**6)
    slots = FairSlots(total=4, per_owner=2, per_host=4)
    base = f"http://sandbox.test:{port}"

    async def persist(owner: UUID, url: str) -> bytes:
        async with slots.hold(owner, source_host(url)):
            return await guard.download(url)

    slow = [asyncio.create_task(persist(uuid4(), f"{base}/trickle"))]
    slow_owner = uuid4()
    slow += [asyncio.create_task(persist(slow_owner, f"{base}/trickle")) for _ in range(10)]
    try:
        await _wait_for(lambda: app.state.trickling == 3)
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(persist(uuid4(), f"{base}/exact/1000"), 2) == b"x" * 1000
        assert asyncio.get_running_loop().time() - started < 1.0
        assert app.state.trickling == 3  # the slow owner holds two slots, never more
    finally:
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)


async def test_a_slow_host_does_not_hold_up_other_hosts(server) -> None:
    app, port, client, resolver = server
    guard = downloader(
        client, resolver, allow=[f"sandbox.test:{port}", f"127.0.0.1:{port}"], max_bytes=10**6
    )
    slots = FairSlots(total=4, per_owner=4, per_host=2)

    async def persist(url: str) -> bytes:
        async with slots.hold(uuid4(), source_host(url)):
            return await guard.download(url)

    slow = [asyncio.create_task(persist(f"http://sandbox.test:{port}/trickle")) for _ in range(10)]
    try:
        await _wait_for(lambda: app.state.trickling == 2)
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(persist(f"http://127.0.0.1:{port}/exact/1000"), 2) == (
            b"x" * 1000
        )
        assert asyncio.get_running_loop().time() - started < 1.0
        assert app.state.trickling == 2
    finally:
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
