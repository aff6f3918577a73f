"""midjourney-proxy: it POSTs the task to `notifyHook` with no header of ours and echoes
that URL in every body (`properties.notifyHook`), so the URL carries the task token alone:
a shared secret there would travel into the proxy's logs and database, and into every body.
(Callback URLs given out before carried `secret` too; it is ignored.)"""

from __future__ import annotations

from imagetron_gateway.adapters.webhooks.schemes import UnsignedVerifier
from imagetron_gateway.settings import GatewaySettings


class MidjourneyProxyVerifier(UnsignedVerifier):
    provider = "midjourney_proxy"

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> MidjourneyProxyVerifier:
        return cls(token_key=settings.webhook_token_key.get_secret_value())
