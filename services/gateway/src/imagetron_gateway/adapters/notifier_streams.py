"""Event streams from the notifier, each on a connection of its own.

One `httpx.AsyncClient` for every stream looked right (no pool limit, a stream holds its
connection) but does not scale: httpcore's connection pool walks every connection it holds
each time it assigns a request and each time a response closes, so with thousands of open
streams every new or ending stream cost milliseconds of the event loop, and opening them
was quadratic (`bench/sse_fanout.py` through the gateway, py-spy: half of the gateway's
samples in `AsyncConnectionPool`; 8,231 of 10,000 streams open after 295 s). Each stream
then got an httpx transport of its own; now it is an asyncio connection with h11 (the HTTP/1.1
state machine httpcore is built on) reading it, and nothing else:

- what a stream holds is what every full collection of the garbage collector walks, and a
  gateway holds thousands of them: an httpx transport, its one-connection pool, the httpcore
  connection and anyio's stream, locks and events, and the five generators its body was read
  through came to about 85 tracked objects per stream (gc.get_objects, 2,000 streams:
  463,269 -> 291,302 with this adapter);
- each chunk was read through those five generators, in a cancel scope of its own.

The head of the answer must come within `connect_timeout` (it used to be unbounded); the body
then takes as long as the stream lives. Failures are `httpx.TransportError`s, as from a
client, so callers need no second vocabulary."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping

import h11
import httpx

#: A refusal's body (a problem document) is read whole: at most this much.
MAX_REFUSAL_BYTES = 64 * 1024
READ_BYTES = 64 * 1024


class NotifierStream:
    """One upstream response; `aclose` ends it and its connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: h11.Connection,
        response: h11.Response,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._connection = connection
        self.status_code = response.status_code
        self._head = response.headers

    @property
    def headers(self) -> httpx.Headers:
        """The answer's headers (read for a refusal; a stream keeps only h11's list)."""
        return httpx.Headers([(k.decode(), v.decode()) for k, v in self._head])

    async def aread(self) -> bytes:
        """The whole body (a refusal's problem document), at most MAX_REFUSAL_BYTES."""
        body = bytearray()
        async for chunk in self.aiter_raw():
            body += chunk
            if len(body) > MAX_REFUSAL_BYTES:
                raise httpx.ReadError(f"the notifier's answer is over {MAX_REFUSAL_BYTES} bytes")
        return bytes(body)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, until it ends; `httpx.ReadError` if the
        connection breaks or the notifier breaks HTTP."""
        try:
            while True:
                event = await _next_event(self._reader, self._connection)
                if type(event) is h11.Data:
                    yield bytes(event.data)
                elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
                    return
                elif type(event) is h11.ConnectionClosed:
                    raise httpx.ReadError("the notifier closed the stream mid-answer")
        except (OSError, h11.RemoteProtocolError) as exc:
            raise httpx.ReadError(f"the notifier's stream broke off: {exc!r}") from exc

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1):
                await self._writer.wait_closed()


class NotifierStreams:
    """Opens `GET` streams, each on its own connection."""

    def __init__(self, *, connect_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        # Built once (loading the CA bundle costs milliseconds), used only if the notifier's
        # URL is https.
        self._tls: ssl.SSLContext = httpx.create_ssl_context()

    async def open(
        self, url: str, *, headers: Mapping[str, str], params: Mapping[str, str]
    ) -> NotifierStream:
        """The notifier's answer, its body not read yet; transport failures (no connection,
        no answer within `connect_timeout`, no HTTP) are `httpx.TransportError`s."""
        target = httpx.URL(url, params=params)
        tls = self._tls if target.scheme == "https" else None
        port = target.port or (443 if tls else 80)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    target.host, port, ssl=tls, limit=READ_BYTES
                )
                connection = h11.Connection(h11.CLIENT)
                request = h11.Request(
                    method="GET",
                    target=target.raw_path,
                    headers=[("Host", target.netloc.decode()), *headers.items()],
                )
                writer.write(connection.send(request) + connection.send(h11.EndOfMessage()))
                await writer.drain()
                response = await _head(reader, connection)
        except TimeoutError as exc:
            _close(writer)
            raise httpx.ConnectTimeout(
                f"no answer from {target} within {self._connect_timeout} s"
            ) from exc
        except (OSError, h11.ProtocolError) as exc:
            _close(writer)
            raise httpx.ConnectError(f"{target}: {exc!r}") from exc
        except BaseException:
            _close(writer)
            raise
        return NotifierStream(reader, writer, connection, response)


async def _head(reader: asyncio.StreamReader, connection: h11.Connection) -> h11.Response:
    while True:
        event = await _next_event(reader, connection)
        if type(event) is h11.Response:
            return event
        if type(event) is h11.ConnectionClosed:
            raise h11.RemoteProtocolError("the connection closed before an answer")
        # informational answers (1xx) are skipped


async def _next_event(reader: asyncio.StreamReader, connection: h11.Connection) -> object:
    """h11's next event, reading from the connection as long as h11 needs more bytes."""
    while (event := connection.next_event()) is h11.NEED_DATA:
        connection.receive_data(await reader.read(READ_BYTES))
    return event


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()
