"""midjourney-proxy: it POSTs to `notifyHook` with no header of ours, so the shared secret
travels in the callback URL (`secret`) next to the task token."""

from __future__ import annotations

from imagetron_gateway.adapters.webhooks.schemes import TOKEN, SharedSecretVerifier
from imagetron_gateway.app.ports import WebhookParameter
from imagetron_gateway.settings import GatewaySettings


class MidjourneyProxyVerifier(SharedSecretVerifier):
    provider = "midjourney_proxy"
    secret = WebhookParameter("query", "secret")
    parameters = (TOKEN, secret)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> MidjourneyProxyVerifier:
        return cls(
            token_key=settings.webhook_token_key.get_secret_value(),
            shared_secret=settings.webhook_secret.get_secret_value(),
        )
