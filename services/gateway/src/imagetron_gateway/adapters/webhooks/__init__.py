"""Webhook verification, one file per provider behind the `WebhookVerifier` port.

To add a provider: a module here with a verifier class (usually a few lines on one of the
`schemes`, plus `from_settings`), listed in `VERIFIERS`; its route and its documented
parameters follow (the operation must also be in `contracts/openapi.yaml`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from imagetron_gateway.adapters.webhooks.goapi import GoapiVerifier
from imagetron_gateway.adapters.webhooks.midjourney_proxy import MidjourneyProxyVerifier
from imagetron_gateway.adapters.webhooks.replicate import ReplicateVerifier
from imagetron_gateway.app.ports import WebhookParameter, WebhookVerifier
from imagetron_gateway.settings import GatewaySettings


class VerifierType(Protocol):
    """A verifier class: its provider (`webhooks.<provider>` and the route
    `/webhooks/<provider>/{task_id}`), the credentials the route documents besides
    `task_id`, and how it is made from settings."""

    @property
    def provider(self) -> str: ...

    @property
    def parameters(self) -> tuple[WebhookParameter, ...]: ...

    def from_settings(self, settings: GatewaySettings) -> WebhookVerifier: ...


VERIFIERS: tuple[VerifierType, ...] = (GoapiVerifier, MidjourneyProxyVerifier, ReplicateVerifier)


def webhook_verifiers(settings: GatewaySettings) -> Mapping[str, WebhookVerifier]:
    return {kind.provider: kind.from_settings(settings) for kind in VERIFIERS}
