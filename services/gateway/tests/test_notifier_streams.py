"""`NotifierStreams`: every event stream on a connection of its own, closed with it (no shared
pool to wait for or to walk), a refusal read in full, an unreachable notifier a transport
error."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from imagetron_gateway.adapters.notifier_streams import NotifierStreams


@dataclass
class Upstream:
    """An HTTP/1.1 server on 127.0.0.1 that answers `GET /events` with a chunked stream of one
    chunk and keeps it open, and `GET /full` with a 503; it records each connection."""

    url: str = ""
    peers: list[tuple[str, int]] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    closed: asyncio.Queue[tuple[str, int]] = field(default_factory=asyncio.Queue)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.peers.append(peer)
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        if head.startswith(b"GET /full"):
            body = b'{"status":503}'
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                b"Content-Type: application/problem+json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n8\r\ndata: 1\n\r\n"
            )
        await writer.drain()
        await reader.read()  # until the client closes its end
        writer.close()
        await self.closed.put(peer)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
    async with server:
        yield state
        server.close()


async def test_each_stream_has_a_connection_of_its_own_closed_with_it(upstream: Upstream) -> None:
    streams = NotifierStreams(connect_timeout=5)
    opened = [
        await streams.open(
            f"{upstream.url}/events",
            headers={"Authorization": f"Bearer t{n}"},
            params={"types": "task.*"},
        )
        for n in range(3)
    ]
    assert [s.status_code for s in opened] == [200, 200, 200]
    assert len(set(upstream.peers)) == 3  # three connections, none shared or reused
    assert [r.split(b"\r\n")[0] for r in upstream.requests] == [
        b"GET /events?types=task.%2A HTTP/1.1"
    ] * 3
    assert all(b"authorization: bearer t" in r.lower() for r in upstream.requests)
    assert await anext(opened[1].aiter_raw()) == b"data: 1\n"

    await opened[1].aclose()
    assert await asyncio.wait_for(upstream.closed.get(), 5) == upstream.peers[1]
    assert upstream.closed.empty()  # the others stay open
    for stream in (opened[0], opened[2]):
        await stream.aclose()
    assert {await asyncio.wait_for(upstream.closed.get(), 5) for _ in range(2)} == {
        upstream.peers[0],
        upstream.peers[2],
    }


async def test_a_refusal_is_read_with_its_headers(upstream: Upstream) -> None:
    stream = await NotifierStreams(connect_timeout=5).open(
        f"{upstream.url}/full", headers={}, params={}
    )
    try:
        assert stream.status_code == 503
        assert stream.headers["retry-after"] == "7"
        assert await stream.aread() == b'{"status":503}'
    finally:
        await stream.aclose()


async def test_an_unreachable_notifier_is_a_transport_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(httpx.TransportError):
        await NotifierStreams(connect_timeout=5).open(
            f"http://127.0.0.1:{port}/events", headers={}, params={}
        )


async def _serve(answer: bytes, *, close: bool) -> tuple[asyncio.Server, str]:
    """A server that reads a request's head, writes `answer`, then closes or waits."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        if not close:
            await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_notifier_that_does_not_answer_in_time_is_a_transport_error() -> None:
    server, url = await _serve(b"", close=False)  # accepts, reads, never answers
    async with server:
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.TransportError, match="no answer"):
            await NotifierStreams(connect_timeout=0.3).open(f"{url}/events", headers={}, params={})
        assert asyncio.get_running_loop().time() - started < 2


async def test_a_stream_broken_mid_answer_ends_with_a_transport_error() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\ndata: 1\n\r\n"
    server, url = await _serve(head + b"20\r\ndata: cut", close=True)
    async with server:
        stream = await NotifierStreams(connect_timeout=5).open(
            f"{url}/events", headers={}, params={}
        )
        got: list[bytes] = []

        async def read_all() -> None:
            async for chunk in stream.aiter_raw():
                got.append(chunk)

        with pytest.raises(httpx.TransportError):
            await read_all()
        await stream.aclose()
    assert b"".join(got).startswith(b"data: 1\n")


async def test_a_refusal_past_its_size_limit_is_not_read_whole() -> None:
    body = b"x" * (65 * 1024)
    answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server, url = await _serve(answer, close=False)
    async with server:
        stream = await NotifierStreams(connect_timeout=5).open(f"{url}/full", headers={}, params={})
        try:
            assert stream.status_code == 503
            with pytest.raises(httpx.TransportError, match="over"):
                await stream.aread()
        finally:
            await stream.aclose()
