"""Telling "a dependency is down" from "our code broke".

A request that fails because PostgreSQL or NATS cannot be reached (refused, reset, shutting
down, too many connections, a connect or pool timeout) is not a bug: the caller should try
again shortly, so the edges answer 503 with `Retry-After` instead of 500. Everything else
stays an internal error.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import nats.errors
import sqlalchemy.exc

from imagetron_platform.errors import ServiceUnavailable

_UNREACHABLE: tuple[type[BaseException], ...] = (
    # The socket: refused, reset, unreachable, or a connect that timed out.
    ConnectionError,
    TimeoutError,
    # PostgreSQL: the server is starting, stopping, crashed or full.
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # SQLAlchemy's pool waited too long for a connection.
    sqlalchemy.exc.TimeoutError,
    # NATS: not connected (yet, or any more).
    nats.errors.ConnectionClosedError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]
        if isinstance(current, sqlalchemy.exc.DBAPIError):
            orig = current.orig
            pending.append(orig if isinstance(orig, BaseException) else None)


def dependency_outage(exc: BaseException) -> ServiceUnavailable | None:
    """A 503 for `exc` when it (or what caused it) says a dependency cannot be reached;
    None when it is some other failure."""
    chain = list(_chain(exc))
    for cause in chain:
        lost = isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated
        if lost or isinstance(cause, _UNREACHABLE):
            return ServiceUnavailable(
                f"The service cannot reach {_which(chain)} right now "
                f"({type(cause).__name__}); try again shortly."
            )
    return None


def _which(chain: list[BaseException]) -> str:
    """Which dependency failed, from the libraries the failure went through."""
    modules = {type(e).__module__.split(".")[0] for e in chain}
    for e in chain:
        tb = e.__traceback__
        while tb is not None:
            modules.add(str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0])
            tb = tb.tb_next
    if modules & {"asyncpg", "sqlalchemy"}:
        return "the database"
    if modules & {"nats", "faststream"}:
        return "NATS"
    return "a dependency"
