"""API keys announced as revoked (`identity.keys.revoked`, core NATS): the streams of
events tokens issued under them end, and such tokens are refused from then on.

Kept in memory for as long as an events token can live (the gateway's longest TTL is a
day); a notifier that restarts relies on the tokens' own short lives instead."""

from __future__ import annotations

import json
import logging
import time
from uuid import UUID

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from imagetron_platform.events_tokens import KEY_REVOKED_SUBJECT

log = logging.getLogger(__name__)
#: The longest an events token lives (the gateway's `events_token_ttl_seconds` at most).
REMEMBER_SECONDS = 86_400.0


class RevokedKeys:
    def __init__(self, nats: Client) -> None:
        self._nats = nats
        self._revoked: dict[UUID, float] = {}
        self._subscription: Subscription | None = None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._revoked

    async def start(self) -> None:
        self._subscription = await self._nats.subscribe(KEY_REVOKED_SUBJECT, cb=self._on_revoked)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def _on_revoked(self, msg: Msg) -> None:
        try:
            key_id = UUID(json.loads(msg.data)["key_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed key revocation")
            return
        now = time.monotonic()
        self._revoked = {k: t for k, t in self._revoked.items() if now - t < REMEMBER_SECONDS}
        self._revoked[key_id] = now
