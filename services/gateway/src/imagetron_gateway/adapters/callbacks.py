from __future__ import annotations

from faststream.nats import NatsBroker

from imagetron_contracts import streams
from imagetron_contracts.models.images import ProviderCallback


class JetStreamCallbackSink:
    """Publishes to `webhooks.<provider>` and returns once the WEBHOOKS stream has stored
    it. `dedupe_id` becomes `Nats-Msg-Id`: a provider retrying the same delivery within the
    duplicate window is stored once."""

    def __init__(self, broker: NatsBroker, timeout: float = 5.0) -> None:
        self._broker = broker
        self._timeout = timeout

    async def accept(self, callback: ProviderCallback, dedupe_id: str) -> None:
        await self._broker.publish(
            callback.model_dump(mode="json"),
            f"webhooks.{callback.provider}",
            headers={"Nats-Msg-Id": dedupe_id},
            stream=streams.WEBHOOKS_STREAM.name,
            timeout=self._timeout,
        )
