from __future__ import annotations

from imagetron_contracts import streams
from imagetron_contracts.models.images import ProviderCallback
from imagetron_platform.messaging import AcknowledgedPublisher


class JetStreamCallbackSink:
    """Publishes to `webhooks.<provider>` and returns once the WEBHOOKS stream has stored
    it. `dedupe_id` becomes `Nats-Msg-Id`: a provider retrying the same delivery within the
    duplicate window is stored once."""

    def __init__(self, publisher: AcknowledgedPublisher) -> None:
        self._publisher = publisher

    async def accept(self, callback: ProviderCallback, dedupe_id: str) -> None:
        await self._publisher.publish(
            f"webhooks.{callback.provider}",
            callback.model_dump_json().encode(),
            stream=streams.WEBHOOKS_STREAM.name,
            msg_id=dedupe_id,
        )
