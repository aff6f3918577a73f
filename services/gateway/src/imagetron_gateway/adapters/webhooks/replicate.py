"""Replicate: Standard Webhooks signatures (secret from `GET /v1/webhooks/default/secret`),
and the task token."""

from __future__ import annotations

from imagetron_gateway.adapters.webhooks.schemes import StandardWebhooksVerifier
from imagetron_gateway.settings import GatewaySettings


class ReplicateVerifier(StandardWebhooksVerifier):
    provider = "replicate"

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> ReplicateVerifier:
        secret = settings.replicate_webhook_secret
        return cls(
            token_key=settings.webhook_token_key.get_secret_value(),
            signing_secret=secret.get_secret_value() if secret is not None else None,
        )
