"""TCP ports on 127.0.0.1: picking free ones and checking the ones we were given."""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterable
from pathlib import Path

from imagetron.servers.errors import ServerError

LOCALHOST = "127.0.0.1"


class PortInUseError(ServerError):
    """A TCP port that a server must bind on 127.0.0.1 is already taken."""

    def __init__(self, port: int, what: str, option: str | None = None) -> None:
        self.port = port
        self.what = what
        self.option = option
        how = f"with {option}" if option else "(port 0 picks a free one)"
        super().__init__(
            f"port {port} for {what} is already in use on {LOCALHOST}; "
            f"stop that process or choose another port {how}"
        )


def free_port() -> int:
    """Return a TCP port that is currently free on 127.0.0.1."""
    return free_ports(1)[0]


def _ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux default


#: Where `free_ports` draws from instead, as `LOW-HIGH`: concurrent test workers get
#: disjoint ranges (the root conftest.py), so that one cannot take a port the other chose
#: for a server it has not started yet.
PORT_RANGE_ENV = "IMAGETRON_PORT_RANGE"


def _port_range() -> tuple[int, int]:
    low, _high = _ephemeral_port_range()
    default = (15000, low - 1)
    value = os.environ.get(PORT_RANGE_ENV)
    if not value:
        return default
    try:
        first, last = (int(part) for part in value.split("-"))
    except ValueError:
        raise ValueError(
            f"{PORT_RANGE_ENV}={value!r}: expected LOW-HIGH, e.g. 15000-23999"
        ) from None
    if not 1024 <= first < last < 65536:
        raise ValueError(f"{PORT_RANGE_ENV}={value!r}: expected 1024 <= LOW < HIGH < 65536")
    return first, last


def worker_port_range(worker: int, workers: int) -> str:
    """`PORT_RANGE_ENV`'s value for worker `worker` (0-based) of `workers` sharing the
    default range: equal disjoint slices of it."""
    first, last = 15000, _ephemeral_port_range()[0] - 1
    span = (last - first + 1) // max(1, workers)
    low = first + worker * span
    return f"{low}-{low + span - 1}"


def free_ports(count: int, *, below: int = 65536) -> list[int]:
    """Return ``count`` *distinct* TCP ports that are currently free on 127.0.0.1.

    Ports are drawn at random from *below* the kernel's ephemeral range
    (``ip_local_port_range``, 32768-60999 by default).  Asking the kernel for port 0
    would pick from the ephemeral range, which every outgoing connection also draws its
    local port from: a health probe or database connection made between choosing a port
    and the server binding it could then take the port (this happened while starting
    three servers in parallel).  Another process can still take a port in that window;
    servers then fail with :class:`PortInUseError` or :class:`ServerStartError`.
    """
    with _HANDED_OUT_LOCK:
        chosen = _draw(count, below)
        _HANDED_OUT.extend(chosen)
    return chosen


def reserve_ports(ports: Iterable[int]) -> None:
    """Ports this process will bind that were chosen elsewhere (given on the command line, or
    drawn by the process that started this one): `free_ports` skips them from now on, as it
    skips those it handed out. `imagetron up` drew the S3 server's internal ports while the
    services' ports, given by its caller, were still free: one was the publisher's (CI)."""
    with _HANDED_OUT_LOCK:
        _HANDED_OUT.extend(port for port in ports if port)


#: Ports this process handed out lately: free when drawn, but perhaps not bound yet (a stack
#: draws its ports in several calls, then starts its servers one after the other). Two calls
#: never hand out the same port: a clean CI run's cluster found one replica's port taken by
#: another server of the same stack, drawn by an earlier call.
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=2048)
_HANDED_OUT_LOCK = threading.Lock()


def _draw(count: int, below: int) -> list[int]:
    first, last = _port_range()
    last = min(last, below - 1)
    recent = set(_HANDED_OUT)
    chosen: list[int] = []
    if last - first >= 1000:
        for _ in range(count * 50):
            if len(chosen) == count:
                return chosen
            port = first + secrets.randbelow(last - first + 1)
            if port not in chosen and port not in recent and _port_is_free(port):
                chosen.append(port)
    # Unusual port range: fall back to kernel-chosen ports, held open until all are known.
    with contextlib.ExitStack() as stack:
        while len(chosen) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOCALHOST, 0))
            port = int(sock.getsockname()[1])
            if port < below and port not in chosen and port not in recent:
                chosen.append(port)
    return chosen


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too; without it, connections lingering in TIME_WAIT
        # would make a port look busy although the server could bind it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def ensure_port_free(port: int, what: str, *, option: str | None = None) -> None:
    """Raise :class:`PortInUseError` if ``port`` cannot be bound on 127.0.0.1.

    ``what`` names the server in the message ("PostgreSQL"); ``option`` names the
    command-line option that changes the port ("--postgres-port"), if there is one.
    """
    if not 0 < port < 65536:
        raise ValueError(f"invalid TCP port {port} for {what}")
    if not _port_is_free(port):
        raise PortInUseError(port, what, option)


def free_port_pair(offset: int) -> tuple[int, int]:
    """Return free ports ``(p, p + offset)``, for servers that derive one from the other."""
    for _ in range(100):
        (port,) = free_ports(1, below=65536 - offset)
        with _HANDED_OUT_LOCK:
            if port + offset not in _HANDED_OUT and _port_is_free(port + offset):
                _HANDED_OUT.append(port + offset)
                return port, port + offset
    raise ServerError(f"could not find two free ports {offset} apart on {LOCALHOST}")


def resolve_port(port: int) -> int:
    if port == 0:
        return free_port()
    if not 0 < port < 65536:
        raise ValueError(f"invalid TCP port {port}")
    return port
