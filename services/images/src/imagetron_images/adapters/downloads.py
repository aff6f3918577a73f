"""Fetching provider images without letting a URL reach into our own network (SSRF).

A provider hands us URLs, and a provider (or whoever forged its callback) could point them
anywhere. So every hop is checked: http(s) only; the host is resolved once and every address
it resolves to must be public (no loopback, private, link-local, multicast, reserved,
unspecified or cloud-metadata address, IPv4 or IPv6, including IPv4 embedded in IPv6); the
connection then goes to that checked address (no second lookup an attacker's DNS could
answer differently); redirects are followed by hand, each one checked the same way; the
body is capped while it streams; the whole download has a deadline, and a minimum pace:
after a grace period, a server whose bytes arrive slower on average than
`min_bytes_per_second` is cut off with a retryable failure, so a trickle cannot hold a
download slot for the whole deadline. `host:port` pairs on an explicit allow-list (the
local sandbox) skip the address check, nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Protocol

import httpx

from imagetron_images.app.ports import DownloadFailed, DownloadRefused, SourceGone

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address

MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Instance metadata services. Most sit in link-local space, which is refused anyway; these
# are listed so that the reason is explicit and so that the ones outside it are caught too.
CLOUD_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
    )
)
# Carrier-grade NAT space: not "private" to Python, not public either.
_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")
_NAT64_PREFIX = IPv6Network("64:ff9b::/96")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why we refuse to connect to `address`, or None when it is a public address."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := forbidden_reason(embedded)) is not None:
            return f"{reason} (inside {address})"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address in CLOUD_METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (address in _SHARED_ADDRESS_SPACE, "a shared (carrier-grade NAT) address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for forbidden, reason in checks if forbidden), None)


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64_PREFIX:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


class HostResolver(Protocol):
    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]: ...


class SystemResolver:
    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [ip_address(info[4][0]) for info in infos]


@dataclass(frozen=True)
class _Hop:
    """One request of a download: the URL as given, and where we will really connect."""

    url: httpx.URL
    address: IPAddress

    @property
    def connect_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        host = f"[{self.url.host}]" if ":" in self.url.host else self.url.host
        return host if self.url.port is None else f"{host}:{self.url.port}"


class SafeImageDownloader:
    """The ImageDownloader port: SSRF-guarded, size-capped HTTP(S) downloads."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        resolver: HostResolver,
        allow_hosts: Collection[str] = (),
        max_bytes: int,
        timeout_seconds: float,
        min_bytes_per_second: float = 0,
        grace_seconds: float = 10.0,
    ) -> None:
        # The client must not follow redirects or honour proxy variables: both would take
        # the connection somewhere we did not check. `guarded_http_client()` makes one.
        self._client = client
        self._resolver = resolver
        self._allow_hosts = frozenset(h.lower() for h in allow_hosts)
        self._max_bytes = max_bytes
        self._timeout = timeout_seconds
        self._min_rate = min_bytes_per_second
        self._grace = grace_seconds

    async def download(self, url: str) -> bytes:
        pace = _Pace(asyncio.get_running_loop().time(), self._timeout, self._grace, self._min_rate)
        try:
            async with asyncio.timeout_at(pace.deadline()) as deadline:
                return await self._follow(url, pace, deadline)
        except TimeoutError as exc:
            if pace.behind():
                raise DownloadFailed(
                    f"{url} sent {pace.received} bytes in {pace.elapsed():.1f} s, slower than "
                    f"the minimum of {self._min_rate:g} bytes/s; it will be tried again later."
                ) from exc
            raise DownloadFailed(
                f"Downloading {url} took longer than {self._timeout:g} s."
            ) from exc
        except httpx.HTTPError as exc:
            raise DownloadFailed(f"Downloading {url} failed: {exc!r}") from exc

    async def _follow(self, url: str, pace: _Pace, deadline: asyncio.Timeout) -> bytes:
        target = _parse(url)
        for _ in range(MAX_REDIRECTS + 1):
            hop = await self._checked_hop(target)
            async with self._client.stream(
                "GET",
                hop.connect_url,
                headers={
                    "Host": hop.host_header,
                    "Accept": "image/*",
                    "Accept-Encoding": "identity",
                },
                extensions={"sni_hostname": hop.url.host} if hop.url.scheme == "https" else {},
            ) as response:
                if response.status_code in _REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise DownloadRefused(f"{url} redirects to nowhere.")
                    target = _parse(str(target.join(location)))
                    continue
                _check_status(response, url)
                return await self._read_capped(response, url, pace, deadline)
        raise DownloadRefused(f"{url} redirects more than {MAX_REDIRECTS} times.")

    async def _checked_hop(self, url: httpx.URL) -> _Hop:
        port = url.port or _DEFAULT_PORTS[url.scheme]
        host_port = f"[{url.host}]:{port}" if ":" in url.host else f"{url.host}:{port}"
        try:
            addresses: Sequence[IPAddress] = [ip_address(url.host)]
        except ValueError:
            try:
                addresses = await self._resolver.resolve(url.host, port)
            except OSError as exc:
                raise DownloadFailed(f"Cannot resolve {url.host}: {exc}") from exc
        if not addresses:
            raise DownloadFailed(f"{url.host} resolves to no address.")
        if host_port.lower() not in self._allow_hosts:
            for address in addresses:
                if (reason := forbidden_reason(address)) is not None:
                    raise DownloadRefused(
                        f"Refused to fetch from {url.host}: {address} is {reason}."
                    )
        return _Hop(url=url, address=addresses[0])

    async def _read_capped(
        self, response: httpx.Response, url: str, pace: _Pace, deadline: asyncio.Timeout
    ) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            raise DownloadRefused(f"{url} is {declared} bytes; the limit is {self._max_bytes}.")
        body = bytearray()
        # Raw bytes: a compressed body is not inflated (and cannot blow up past the cap).
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self._max_bytes:
                raise DownloadRefused(f"{url} is larger than the limit of {self._max_bytes} bytes.")
            pace.received = len(body)
            deadline.reschedule(pace.deadline())
        return bytes(body)


@dataclass
class _Pace:
    """When a download must be done by: at its deadline (`total` seconds after `start`),
    and before then whenever its bytes fall behind `min_rate` a second, counted from
    `grace` seconds after the start (so a first wait for headers is forgiven)."""

    start: float
    total: float
    grace: float
    min_rate: float
    received: int = 0

    def deadline(self) -> float:
        if self.min_rate <= 0:
            return self.start + self.total
        return self.start + min(self.total, self.grace + self.received / self.min_rate)

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self.start

    def behind(self) -> bool:
        """Cut off for its pace, not for its deadline."""
        return self.min_rate > 0 and self.elapsed() < self.total


def guarded_http_client(
    *, connect_timeout: float = 10.0, read_timeout: float = 30.0
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        headers={"User-Agent": "imagetron-images"},
    )


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise DownloadRefused(f"Not a URL we can fetch: {url!r}.") from exc
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise DownloadRefused(f"Only http(s) URLs with a host are fetched, not {url!r}.")
    if parsed.userinfo:
        raise DownloadRefused("URLs with credentials are not fetched.")
    return parsed


def _check_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status >= 500 or status in _RETRYABLE_STATUSES:
        raise DownloadFailed(f"{url} answered {status}.")
    if status in (404, 410):
        raise SourceGone(f"{url} answered {status}.")
    raise DownloadRefused(f"{url} answered {status}.")
