"""What the gateway's request handlers need, built once in the lifespan (bootstrap.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypedDict

import httpx

from imagetron_gateway.adapters.notifier_streams import NotifierStreams
from imagetron_gateway.adapters.rate_limits import RequestRateLimits
from imagetron_gateway.adapters.revocations import OpenStreams
from imagetron_gateway.adapters.shared_streams import SharedStreams
from imagetron_gateway.app.budgets import DailyBudgets
from imagetron_gateway.app.idempotency import IdempotentRequests
from imagetron_gateway.app.identity import Authenticator
from imagetron_gateway.app.ports import (
    CallbackSink,
    IdentityUnitOfWork,
    KeyRevocations,
    ServiceClient,
    WebhookVerifier,
)
from imagetron_gateway.settings import GatewaySettings


@dataclass(frozen=True)
class GatewayContext:
    settings: GatewaySettings
    rpc: ServiceClient
    callbacks: CallbackSink
    authenticator: Authenticator
    identity_uow: Callable[[], IdentityUnitOfWork]
    revocations: KeyRevocations
    #: The event streams this replica proxies, ended when their key is revoked.
    streams: OpenStreams
    #: Streams stored image bytes from object storage.
    http: httpx.AsyncClient
    #: Streams SSE from the notifier, each on a connection of its own.
    notifier: NotifierStreams
    #: The streams from the notifier that browser streams wanting the same events share.
    shared_streams: SharedStreams
    rate_limits: RequestRateLimits
    budgets: DailyBudgets
    #: Answers kept for requests sent with an Idempotency-Key.
    idempotency: IdempotentRequests
    #: provider → how its callbacks are verified (adapters/webhooks).
    webhooks: Mapping[str, WebhookVerifier]


class GatewayState(TypedDict):
    """The lifespan state (bootstrap): requests read it from `request.state`."""

    context: GatewayContext
