"""Subscribers for the callbacks of the providers besides GoAPI (`webhooks.<provider>`).

The gateway has verified each one before publishing it; here it is applied to its task by
the same handler, the same rules and the same redelivery policy as GoAPI's callbacks. They
are registered whatever the default provider is: tasks of a provider that is no longer the
default still finish.
"""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage

from imagetron_contracts.models.images import ProviderCallback
from imagetron_contracts.streams import (
    WEBHOOKS_MIDJOURNEY_PROXY,
    WEBHOOKS_REPLICATE,
    WEBHOOKS_STREAM,
)
from imagetron_images.adapters.midjourney_proxy import PROVIDER as MIDJOURNEY_PROXY
from imagetron_images.adapters.replicate import PROVIDER as REPLICATE
from imagetron_images.app import callbacks
from imagetron_images.app.dependencies import Dependencies
from imagetron_images.entrypoints.messaging import ConsumerSettings, _run
from imagetron_platform.messaging import jstream

MIDJOURNEY_PROXY_CALLBACK_CONSUMER = callbacks.callback_consumer(MIDJOURNEY_PROXY)
REPLICATE_CALLBACK_CONSUMER = callbacks.callback_consumer(REPLICATE)


def register_provider_webhooks(
    broker: NatsBroker, deps: Dependencies, consumers: ConsumerSettings
) -> None:
    @broker.subscriber(
        WEBHOOKS_MIDJOURNEY_PROXY,
        stream=jstream(WEBHOOKS_STREAM),
        durable=MIDJOURNEY_PROXY_CALLBACK_CONSUMER,
        pull_sub=PullSub(),
        config=consumers.callbacks.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def apply_midjourney_proxy_callback(callback: ProviderCallback, msg: NatsMessage) -> None:
        await _run(
            msg,
            consumers.callbacks,
            lambda delivery: callbacks.apply_provider_callback(
                callback, delivery, deps.new_uow(), deps.providers
            ),
        )

    @broker.subscriber(
        WEBHOOKS_REPLICATE,
        stream=jstream(WEBHOOKS_STREAM),
        durable=REPLICATE_CALLBACK_CONSUMER,
        pull_sub=PullSub(),
        config=consumers.callbacks.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def apply_replicate_callback(callback: ProviderCallback, msg: NatsMessage) -> None:
        await _run(
            msg,
            consumers.callbacks,
            lambda delivery: callbacks.apply_provider_callback(
                callback, delivery, deps.new_uow(), deps.providers
            ),
        )
