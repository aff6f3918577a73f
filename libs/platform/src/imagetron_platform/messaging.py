"""The one place that builds a NATS broker, and the JetStream streams it works with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from faststream import BaseMiddleware
from faststream._internal.context import Context
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage as _NatsMessage
from faststream.nats.prometheus.provider import (
    NatsMetricsSettingsProvider,
    settings_provider_factory,
)
from faststream.nats.security import NatsSecurity, NatsUserPassword
from faststream.prometheus import ConsumeAttrs, MetricsSettingsProvider
from faststream.prometheus.middleware import PrometheusMiddleware
from faststream.response import PublishCommand
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from imagetron_contracts.streams import StreamSpec
from imagetron_platform import correlation
from imagetron_platform.metrics import REGISTRY
from imagetron_platform.nats_access import inbox_prefix
from imagetron_platform.nats_connection import nats_servers, nats_tls, nats_user
from imagetron_platform.settings import NatsSettings

log = logging.getLogger(__name__)


class _AwaitedContext(Context):
    """FastStream's `Context` resolved on the event loop: fast_depends runs a custom
    field's synchronous `use` in a worker thread, a thread hop for every message (measured:
    about a fifth of the CPU a callback costs the images service, and its latency) to
    read a dictionary."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


#: A subscriber's parameter for the message being handled (acks, headers, metadata): what
#: `faststream.nats.annotations.NatsMessage` is, without the worker thread.
JetStreamMessage = Annotated[_NatsMessage, _AwaitedContext("message")]


class CorrelationMiddleware(BaseMiddleware):
    """Carries the correlation id from consumed messages into logs and onto published ones."""

    async def on_receive(self) -> None:
        # Before any middleware's consume_scope (FastStream's own "Received" log line among
        # them), so every line about this message carries its id and none a stale one.
        headers = getattr(self.msg, "headers", None) or {}
        correlation.bind(headers.get("correlation_id"))

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        correlation.bind(msg.correlation_id)
        return await call_next(msg)

    async def publish_scope(self, call_next: Any, cmd: PublishCommand) -> Any:
        # FastStream fills in a random id before middlewares run: inside a request or a
        # handler, the unit of work's id wins. (The outbox relay runs outside both and
        # passes each row's own id explicitly.)
        current = correlation.current()
        if current is not None:
            cmd.correlation_id = current
        return await call_next(cmd)


_VARIABLE_TOKENS = re.compile(
    r"(?<=\.)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=\.|$)"
    r"|(?<=^_INBOX\.).*"
)


def metric_subject(subject: str) -> str:
    """A subject as a metric label: owner ids and reply inboxes become `*`, so there is one
    series per kind of subject, not one per user."""
    return _VARIABLE_TOKENS.sub("*", subject)


class _SubjectMetrics(NatsMetricsSettingsProvider):
    def get_consume_attrs_from_message(self, msg: StreamMessage[Msg]) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = metric_subject(attrs["destination_name"])
        return attrs

    def get_publish_destination_name_from_cmd(self, cmd: PublishCommand) -> str:
        return metric_subject(super().get_publish_destination_name_from_cmd(cmd))


def _metrics_settings(msg: Msg | Sequence[Msg] | None) -> MetricsSettingsProvider[Any] | None:
    provider = settings_provider_factory(msg)
    return _SubjectMetrics() if isinstance(provider, NatsMetricsSettingsProvider) else provider


@cache
def _prometheus(service: str) -> PrometheusMiddleware[Any, Any]:
    # One per process: its metrics are registered in the process-wide registry once.
    return PrometheusMiddleware(
        settings_provider_factory=_metrics_settings, registry=REGISTRY, app_name=service
    )


class AcknowledgedPublisher:
    """JetStream publishes, each returned once the stream stored it, for a service's busiest
    path: nats-py's publish with what FastStream's would write (the JSON content type, the
    correlation id, `Nats-Msg-Id` for the stream's duplicate window) and counted in
    FastStream's publish metrics (the messaging dashboard reads them), without FastStream's
    publish command and middleware chain around it: a fifth of the gateway's CPU per
    verified webhook (py-spy, 9,000 callbacks), as much as nats-py's publish and ack wait.
    Consumers cannot tell the difference: they read the same body and headers."""

    BROKER = "nats"

    def __init__(self, broker: NatsBroker, service: str, *, ack_seconds: float = 5.0) -> None:
        self._broker = broker
        self._service = service
        self._ack_seconds = ack_seconds
        self._js: JetStreamContext | None = None
        # FastStream's own metric families (registered once per process by `_prometheus`).
        metrics = _prometheus(service)._metrics_container
        self._total = metrics.published_messages_total
        self._seconds = metrics.published_messages_duration_seconds
        self._errors = metrics.published_messages_exceptions_total

    async def publish(self, subject: str, payload: bytes, *, stream: str, msg_id: str) -> None:
        """Returns once `stream` acknowledged the message (within `ack_seconds`); raises
        what nats-py raises."""
        if self._js is None:
            self._js = self._broker.connection.jetstream()
        headers = {
            "content-type": "application/json",
            "correlation_id": correlation.current() or str(uuid.uuid4()),
            "Nats-Msg-Id": msg_id,
        }
        where = {
            "app_name": self._service,
            "broker": self.BROKER,
            "destination": metric_subject(subject),
        }
        started = time.perf_counter()
        status = "success"
        try:
            await self._js.publish(subject, payload, self._ack_seconds, stream, headers)
        except Exception as exc:
            status = "error"
            self._errors.labels(**where, exception_type=type(exc).__name__).inc()
            raise
        finally:
            self._seconds.labels(**where).observe(time.perf_counter() - started)
            self._total.labels(**where, status=status).inc()


class ServiceBroker(NatsBroker):
    """A service's broker: every reply and every pull consumer's delivery arrives in the
    service's own inboxes (`inbox_prefix`), the only ones its NATS user may read.

    FastStream gives each pull subscriber the default `_INBOX.` prefix unless told otherwise,
    whatever the connection's: `start` tells the ones registered by then."""

    def __init__(self, servers: list[str], *, own_inbox: str, **kwargs: Any) -> None:
        super().__init__(servers, inbox_prefix=own_inbox, **kwargs)
        self.own_inbox = own_inbox

    async def start(self) -> None:
        prefix = f"{self.own_inbox}.".encode()
        for subscriber in self.subscribers:
            options = getattr(subscriber, "extra_options", None)
            if isinstance(options, dict) and "inbox_prefix" in options:
                options["inbox_prefix"] = prefix
        await super().start()


def _security(settings: NatsSettings) -> NatsSecurity | None:
    tls = nats_tls(settings)
    if settings.nats_user is not None:
        password = settings.nats_password.get_secret_value() if settings.nats_password else ""
        return NatsUserPassword(
            settings.nats_user, password, ssl_context=tls, use_ssl=tls is not None
        )
    return None if tls is None else NatsSecurity(ssl_context=tls, use_ssl=True)


def make_broker(settings: NatsSettings, service: str) -> ServiceBroker:
    """The service's broker, connecting as its NATS user (`settings.nats_user`, or none)."""
    return ServiceBroker(
        nats_servers(settings.nats_url),
        own_inbox=inbox_prefix(nats_user(settings, service)),
        security=_security(settings),
        middlewares=(CorrelationMiddleware, _prometheus(service)),
        # Our own logger: JSON lines with service and correlation id, like every other.
        logger=logging.getLogger("faststream"),
        log_level=logging.INFO,
        name=f"imagetron-{service}",
        max_reconnect_attempts=-1,
    )


@dataclass(frozen=True)
class Redelivery:
    """How often a durable consumer delivers a message, and how long it waits in between.

    The delay travels with each NAK (`NackMessage(delay=redelivery.delay_after(n))`): NATS
    2.15 redelivers a plain NAK at once, ignoring the consumer's `backoff`, and a `backoff`
    list would also override the NAK's own delay, so there is none in `consumer_config`.
    """

    max_deliver: int
    ack_wait_seconds: float
    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 300.0

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait before delivery `attempt + 1`: exponential, capped."""
        return min(self.first_delay_seconds * 2.0 ** max(attempt - 1, 0), self.max_delay_seconds)

    def is_last(self, attempt: int) -> bool:
        return attempt >= self.max_deliver

    def consumer_config(self, durable_name: str | None = None) -> ConsumerConfig:
        # `ack_wait` bounds an attempt whose consumer died; it must exceed the slowest
        # legitimate attempt.
        return ConsumerConfig(
            durable_name=durable_name, max_deliver=self.max_deliver, ack_wait=self.ack_wait_seconds
        )


@contextlib.asynccontextmanager
async def in_progress(
    report: Callable[[], Awaitable[None]], redelivery: Redelivery
) -> AsyncIterator[None]:
    """While the block runs, tell JetStream that the message is still being worked on
    (`report`: the message's `in_progress`), three times per `ack_wait`, so a slow but
    live attempt is never redelivered to another consumer. `ack_wait` then only bounds how
    long a consumer that died (a crash, SIGKILL) holds its messages: keep it short, not
    sized to the slowest attempt."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(redelivery.ack_wait_seconds / 3)
            try:
                await report()
            except Exception:
                log.warning("could not report a message in progress", exc_info=True)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def one_message_pulls(timeout: float = 5.0) -> PullSub[Literal[False]]:
    """How every pull consumer fetches: one message per pull request; how many are handled
    at once is the subscriber's `max_workers`.

    A fetch of a batch (nats-py `fetch(batch=n)`, n > 1) may hand over a lone message only
    when its request expires (FastStream's pull timeout, 5 s): measured against a real
    server (libs/platform/tests/test_pull_consumers.py), about one lone message in ten waited
    100 ms to the whole timeout; a provider's completion waited 0.9-2.9 s in the images
    service before its callback was even received. A request for one message is answered
    as soon as there is one. (`timeout`: how long one request waits before the next.)"""
    return PullSub(batch_size=1, timeout=timeout)


def jstream(spec: StreamSpec) -> JStream:
    """A reference to a provisioned stream. `declare=False`: FastStream must not rewrite the
    stream's configuration at start-up; `provision_streams` owns it."""
    return JStream(spec.name, declare=False)
