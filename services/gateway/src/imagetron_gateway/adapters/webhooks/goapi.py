"""GoAPI / PiAPI: the shared secret echoed in `x-webhook-secret`, and the task token."""

from __future__ import annotations

from imagetron_gateway.adapters.webhooks.schemes import TOKEN, SharedSecretVerifier
from imagetron_gateway.app.ports import WebhookParameter
from imagetron_gateway.settings import GatewaySettings


class GoapiVerifier(SharedSecretVerifier):
    provider = "goapi"
    secret = WebhookParameter("header", "x-webhook-secret")
    parameters = (TOKEN, secret)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> GoapiVerifier:
        return cls(
            token_key=settings.webhook_token_key.get_secret_value(),
            shared_secret=settings.webhook_secret.get_secret_value(),
        )
