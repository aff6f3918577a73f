"""How every service process starts and stops: one sequence, written once.

A bootstrap describes its process to a `ServiceLifecycle` (the broker, its database and
outbox, what runs before the broker connects, the loops it runs in the background, what it
closes) and gets a FastAPI app whose lifespan runs the same sequence for every service:

start  0. the database answers (waited for with growing delays, up to
          `DATABASE_WAIT_SECONDS`: a service started while PostgreSQL recovers waits for it
          instead of exiting)
       1. `before_connect` hooks, in order (migrations, buckets)
       2. the broker connects (within `NATS_WAIT_SECONDS`: nats-py, told to reconnect for
          ever, would otherwise try for ever); its subscribers start taking messages
       3. the outbox relay starts (a commit that emitted messages wakes it at once)
       4. the background loops start
       5. the service's own state is entered (`state=`), and yielded as the typed
          lifespan state that request handlers read through `request.state`
stop   in reverse: the state is left; loops are cancelled; subscribers stop taking
       messages (FastStream lets in-flight handlers finish); the relay makes a last,
       bounded pass so their events go out on this connection; the broker disconnects;
       the resources registered with `close_on_shutdown` are closed, newest first.
       The same when a step of the start fails: what had started stops, the broker too
       when its own start failed half-way (connected, some subscribers consuming), and the
       error goes on to uvicorn, which exits (`imagetron_platform.serve`). Each step of the
       stop gets at most `STOP_STEP_SECONDS`; one that overruns is logged and left behind.

Readiness (`/readyz`) checks NATS, the database when there is one, and whatever the service
adds with `check`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from faststream.nats import NatsBroker
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from imagetron_platform.db import make_engine, make_session_factory, ping
from imagetron_platform.http import MetricsAccess, ReadinessCheck, install_platform
from imagetron_platform.messaging import make_broker
from imagetron_platform.outbox import OutboxRelay
from imagetron_platform.settings import DatabaseSettings

log = logging.getLogger(__name__)

#: Longest the relay's last pass may hold up shutdown; what is left goes out after a restart.
FINAL_FLUSH_SECONDS = 5.0
#: Longest start-up waits for the service's database to answer before it fails.
DATABASE_WAIT_SECONDS = 30.0
#: Longest start-up waits for NATS to accept the broker's connection before it fails.
NATS_WAIT_SECONDS = 30.0
#: Longest one step of the stop may take (a loop's cancellation, the subscribers, the
#: broker's drain, a resource's close) before the next one runs without it.
STOP_STEP_SECONDS = 5.0

Hook = Callable[[], Awaitable[object]]
StateFactory = Callable[[], AbstractAsyncContextManager[Mapping[str, Any]]]


@dataclass(frozen=True)
class Database:
    """A service's PostgreSQL engine and session factory; nothing connects until used."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(cls, settings: DatabaseSettings, service: str) -> Database:
        engine = make_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            application_name=f"imagetron-{service}",
            connect_timeout_seconds=settings.database_connect_timeout_seconds,
            statement_timeout_seconds=settings.database_statement_timeout_seconds,
            pool_recycle_seconds=settings.database_pool_recycle_seconds,
        )
        return cls(engine=engine, session_factory=make_session_factory(engine))

    async def ping(self) -> None:
        await ping(self.engine)


#: How the loops below wait: `asyncio.sleep`, or a test's stand-in passed to them (never a
#: patched `asyncio.sleep`, which every other task on the event loop would call too).
Sleep = Callable[[float], Awaitable[object]]


async def run_every(
    name: str,
    interval_seconds: float,
    round_: Callable[[], Awaitable[object]],
    *,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Run `round_` every `interval_seconds` for ever. A failing round is logged and tried
    again sooner: after 1 s, 2 s, 4 s ... up to `interval_seconds` (a service that started
    while its database was still coming up does not wait a whole interval)."""
    failures = 0
    while True:
        try:
            await round_()
        except Exception:
            failures += 1
            delay = min(interval_seconds, 2.0 ** (failures - 1))
            log.exception("%s: round failed; trying again in %g s", name, delay)
        else:
            failures, delay = 0, interval_seconds
        await sleep(delay)


async def wait_until_answers(
    what: str,
    probe: Callable[[], Awaitable[object]],
    seconds: float,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] | None = None,
) -> None:
    """Call `probe` until it succeeds, after 0.25 s, 0.5 s, 1 s … (at most 4 s) between tries;
    its last error once `seconds` have passed (on `clock`, by default the event loop's)."""
    now = clock or asyncio.get_running_loop().time
    deadline = now() + seconds
    delay = 0.25
    while True:
        try:
            await probe()
            return
        except Exception as exc:
            if now() + delay > deadline:
                raise
            log.warning("%s does not answer yet (%s); trying again in %g s", what, exc, delay)
        await sleep(delay)
        delay = min(delay * 2, 4.0)


class ServiceLifecycle:
    """Start-up and shutdown of one service process (see the module's docstring)."""

    def __init__(
        self,
        service: str,
        broker: NatsBroker,
        *,
        database: Database | None = None,
        outbox: Table | None = None,
        inbox: Table | None = None,
        outbox_poll_seconds: float = 1.0,
    ) -> None:
        self.service = service
        self.broker = broker
        self.database = database
        self.relay: OutboxRelay | None = None
        if outbox is not None:
            if database is None:
                raise ValueError("an outbox needs the database it lives in")
            self.relay = OutboxRelay(
                database.session_factory,
                outbox,
                broker,
                service=service,
                poll_seconds=outbox_poll_seconds,
                inbox=inbox,
            )
        self._before_connect: list[Hook] = []
        self._loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._closers: list[Hook] = []
        self._checks: dict[str, ReadinessCheck] = {"nats": self._nats_ready}
        if database is not None:
            self._checks["database"] = database.ping
            self._closers.append(database.engine.dispose)

    @classmethod
    def with_database(
        cls,
        service: str,
        settings: DatabaseSettings,
        *,
        outbox: Table | None = None,
        inbox: Table | None = None,
    ) -> tuple[ServiceLifecycle, Database]:
        """The lifecycle of a service that owns a schema, from its settings: its broker
        (`make_broker`: the service's NATS user and inboxes), its `Database`, and the relay
        of `outbox` polling every `outbox_poll_seconds`. The database comes back too, for
        the service's units of work; nothing connects yet."""
        database = Database.from_settings(settings, service)
        lifecycle = cls(
            service,
            make_broker(settings, service),
            database=database,
            outbox=outbox,
            inbox=inbox,
            outbox_poll_seconds=settings.outbox_poll_seconds,
        )
        return lifecycle, database

    # -- what a bootstrap declares

    def before_connect(self, hook: Hook) -> None:
        """Run `hook` at start-up, before the broker connects (migrations, buckets)."""
        self._before_connect.append(hook)

    def background(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `run()` as a task from start-up until shutdown cancels it."""
        self._loops.append((name, run))

    def every(self, name: str, interval_seconds: float, round_: Hook) -> None:
        """Run `round_` every `interval_seconds` in the background (see `run_every`)."""
        self.background(name, lambda: run_every(name, interval_seconds, round_))

    def close_on_shutdown(self, closer: Hook) -> None:
        """Close a resource (an HTTP client, an SDK) at shutdown, after the broker."""
        self._closers.append(closer)

    def check(self, name: str, check: ReadinessCheck) -> None:
        """Add a readiness check to `/readyz`."""
        self._checks[name] = check

    def wake_relay(self) -> None:
        """The units of work's `on_commit`: publish what a commit emitted now, not at the
        relay's next poll."""
        if self.relay is not None:
            self.relay.wake()

    @property
    def readiness(self) -> Mapping[str, ReadinessCheck]:
        return dict(self._checks)

    # -- the sequence

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for closer in self._closers:
                stack.push_async_callback(bounded, _name(closer), closer)
            if self.database is not None:
                await wait_until_answers("the database", self.database.ping, DATABASE_WAIT_SECONDS)
            for hook in self._before_connect:
                await hook()
            # Before it starts: a start that fails half-way (a consumer's `consumer_info`
            # timed out) has connected and started subscribers that consume until stopped
            # (FastStream's pull loops go on while their subscriber runs, even cancelled).
            stack.push_async_callback(bounded, "the broker's stop", self.broker.stop)
            await self._connect()
            await self.broker.start()
            if self.relay is not None:
                relay_task = asyncio.create_task(
                    self.relay.run(), name=f"{self.service}-outbox-relay"
                )
                stack.push_async_callback(_stop_relay, self.relay, relay_task)
            # Stop taking messages before the relay's last pass: events of in-flight
            # handlers (FastStream waits for them) still go out on this connection.
            stack.push_async_callback(
                bounded, "the subscribers' stop", functools.partial(_stop_subscribers, self.broker)
            )
            for name, run in self._loops:
                task = asyncio.create_task(run(), name=f"{self.service}-{name}")
                stack.push_async_callback(_cancel, task)
            log.info("%s service started", self.service)
            yield
            log.info("%s service stopping", self.service)
        log.info("%s service stopped", self.service)

    def app(
        self,
        *,
        title: str,
        state: StateFactory | None = None,
        metrics_access: MetricsAccess = MetricsAccess(),  # noqa: B008 - immutable
    ) -> FastAPI:
        """The service's FastAPI app: the platform's endpoints, and a lifespan that runs
        this sequence and then enters `state` (yielded as the lifespan state)."""

        @contextlib.asynccontextmanager
        async def lifespan_state() -> AsyncIterator[Mapping[str, Any]]:
            async with self.running():
                if state is None:
                    yield {}
                else:
                    async with state() as values:
                        yield values

        return service_app(
            self.service,
            title=title,
            lifespan=lifespan_state,
            readiness=self.readiness,
            metrics_access=metrics_access,
        )

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(NATS_WAIT_SECONDS):
                await self.broker.connect()
        except TimeoutError as exc:
            raise ConnectionError(f"NATS did not answer within {NATS_WAIT_SECONDS:g} s") from exc

    async def _nats_ready(self) -> None:
        if not await self.broker.ping(timeout=1.0):
            raise ConnectionError("not connected to NATS")


#: Imagetron's metrics are Prometheus's and its errors Sentry's; no OpenTelemetry provider is
#: configured, so FastAPI's native telemetry would do nothing but ask for one on every
#: request (three environment lookups: 5 % of a provider callback's CPU, py-spy).
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def service_app(
    service: str,
    *,
    title: str,
    lifespan: StateFactory,
    readiness: Mapping[str, ReadinessCheck],
    metrics_access: MetricsAccess = MetricsAccess(),  # noqa: B008 - immutable
) -> FastAPI:
    """A FastAPI app whose lifespan is `lifespan()` (its value becomes the typed lifespan
    state) with the platform's endpoints. Services' own documents are not served: the
    gateway serves the public contract."""

    @contextlib.asynccontextmanager
    async def app_lifespan(_: FastAPI) -> AsyncIterator[Mapping[str, Any]]:
        async with lifespan() as values:
            yield values

    app = FastAPI(
        title=title,
        lifespan=app_lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=NO_OPENTELEMETRY,
    )
    install_platform(app, service, readiness=readiness, metrics_access=metrics_access)
    return app


async def bounded(what: str, step: Callable[[], Awaitable[object]]) -> None:
    """Run one step of a stop for at most `STOP_STEP_SECONDS`, in a task of its own: past
    that it is cancelled once more and left behind, logged, and the stop goes on (a task
    that swallows its cancellation would hold up `asyncio.timeout` for ever). Its error, if
    it fails in time, is raised."""
    task = asyncio.ensure_future(step())
    done, _ = await asyncio.wait({task}, timeout=STOP_STEP_SECONDS)
    if not done:
        task.cancel()
        log.error("%s took more than %g s; stopping without it", what, STOP_STEP_SECONDS)
        return
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def _name(closer: Hook) -> str:
    return f"closing {getattr(closer, '__qualname__', repr(closer))}"


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await bounded(f"the cancellation of {task.get_name()}", lambda: task)


async def _stop_subscribers(broker: NatsBroker) -> None:
    for subscriber in broker.subscribers:
        await subscriber.stop()


async def _stop_relay(relay: OutboxRelay, task: asyncio.Task[None]) -> None:
    await _cancel(task)
    try:
        async with asyncio.timeout(FINAL_FLUSH_SECONDS):
            await relay.publish_pending()
    except Exception:
        # Nothing is lost: the rows stay unpublished and go out on the next start.
        log.warning("the outbox relay's last pass failed", exc_info=True)
