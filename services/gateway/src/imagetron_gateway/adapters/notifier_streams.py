"""Event streams from the notifier, each on a connection of its own.

One `httpx.AsyncClient` for every stream looked right (no pool limit, a stream holds its
connection) but does not scale: httpcore's connection pool walks every connection it holds
each time it assigns a request and each time a response closes, so with thousands of open
streams every new or ending stream cost milliseconds of the event loop, and opening them
was quadratic (`bench/sse_fanout.py` through the gateway, py-spy: half of the gateway's
samples in `AsyncConnectionPool`; 8,231 of 10,000 streams open after 295 s). Here each
stream gets a transport of its own, one connection and nothing shared but the TLS
context: opening and ending one costs the same however many are open.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping

import httpx


class NotifierStream:
    """One upstream response; `aclose` ends it and its connection."""

    def __init__(self, response: httpx.Response, transport: httpx.AsyncHTTPTransport) -> None:
        self.response = response
        self._transport = transport

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers

    async def aread(self) -> bytes:
        return await self.response.aread()

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self.response.aiter_raw()

    async def aclose(self) -> None:
        try:
            await self.response.aclose()
        finally:
            await self._transport.aclose()


class NotifierStreams:
    """Opens `GET` streams, each on its own connection."""

    def __init__(self, *, connect_timeout: float) -> None:
        # Connect, write and pool waits are bounded; reading waits as long as the stream lives.
        self._timeout = httpx.Timeout(connect_timeout, read=None).as_dict()
        # Built once (loading the CA bundle costs milliseconds), used only if the notifier's
        # URL is https.
        self._tls: ssl.SSLContext = httpx.create_ssl_context()

    async def open(
        self, url: str, *, headers: Mapping[str, str], params: Mapping[str, str]
    ) -> NotifierStream:
        """The notifier's answer, its body not read yet; transport failures are
        `httpx.TransportError`s, as from a client."""
        transport = httpx.AsyncHTTPTransport(
            verify=self._tls, limits=httpx.Limits(max_connections=1, max_keepalive_connections=0)
        )
        request = httpx.Request(
            "GET",
            url,
            headers=headers,
            params=params,
            extensions={"timeout": self._timeout},
        )
        try:
            response = await transport.handle_async_request(request)
        except BaseException:
            await transport.aclose()
            raise
        response.request = request
        return NotifierStream(response, transport)
