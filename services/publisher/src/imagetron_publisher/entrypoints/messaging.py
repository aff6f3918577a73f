"""The publisher on NATS: request/reply for the gateway, the durable consumer of image
events (its read model), and its own durable jobs (suggest, upload, CSV).

How a service subscribes to another's events, by example (`follow_image_events`): a
durable pull consumer named after the service and what it follows, filtered on the subjects
it needs, with deliver policy `all`, so a service started for the first time, or late,
replays what the stream still holds and catches up; each event applied in one transaction
with an inbox row keyed by the event id; failures NAKed with a growing delay, a finite
number of times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.nats import NatsBroker
from nats.js.api import DeliverPolicy

from imagetron_contracts.models.images import ImageEvent
from imagetron_contracts.models.publications import (
    PublicationEvent,
    SuggestMetadataJob,
    UploadBatchCsvJob,
    UploadPublicationJob,
)
from imagetron_contracts.streams import (
    EVENTS_STREAM,
    RPC_PUBLISHER_ACCOUNTS_DELETE,
    RPC_PUBLISHER_ACCOUNTS_GET,
    RPC_PUBLISHER_ACCOUNTS_SET,
    RPC_PUBLISHER_BATCHES_CSV,
    RPC_PUBLISHER_BATCHES_GET,
    RPC_PUBLISHER_BATCHES_LIST,
    RPC_PUBLISHER_BATCHES_PUBLISH,
    RPC_PUBLISHER_PUBLICATIONS_CREATE,
    RPC_PUBLISHER_PUBLICATIONS_GET,
    RPC_PUBLISHER_PUBLICATIONS_LIST,
    RPC_PUBLISHER_PUBLICATIONS_PORTAL_STATUS,
    RPC_PUBLISHER_PUBLICATIONS_PUBLISH,
    RPC_PUBLISHER_PUBLICATIONS_SUGGEST,
    RPC_PUBLISHER_PUBLICATIONS_UPDATE,
    RPC_PUBLISHER_PUBLICATIONS_WITHDRAW,
    RPC_PUBLISHER_READINESS,
    WORK_PUBLISHER_CSV,
    WORK_PUBLISHER_SUGGEST,
    WORK_PUBLISHER_UPLOAD,
    WORK_STREAM,
)
from imagetron_platform.jobs import run_job
from imagetron_platform.messaging import JetStreamMessage, Redelivery, jstream, one_message_pulls
from imagetron_platform.metrics import INBOX_DUPLICATES
from imagetron_platform.rpc import RpcRoute, register_rpc
from imagetron_publisher.app import accounts, delivery, images, publications, suggestions
from imagetron_publisher.app.dependencies import Dependencies
from imagetron_publisher.app.messages import PUBLICATION_EVENTS

log = logging.getLogger(__name__)

SERVICE = "publisher"
RPC_QUEUE = "publisher"
# asyncapi channel `events_images_image`; as a filter: events.images.*.image.*
IMAGE_EVENTS_SUBJECT = "events.images.{owner_id}.image.{event_type}"
IMAGE_EVENTS_CONCURRENCY = 16
#: About an hour of retries before JetStream gives up on one event (a database restart).
IMAGE_EVENTS_REDELIVERY = Redelivery(max_deliver=20, ack_wait_seconds=30.0)

RPC_ROUTES = (
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_CREATE, publications.create_publications),
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_GET, publications.get_publication),
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_LIST, publications.list_publications),
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_UPDATE, publications.update_publication),
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_SUGGEST, publications.suggest_publication_metadata),
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_PUBLISH, publications.publish_publication),
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_WITHDRAW, publications.withdraw_publication),
    RpcRoute(RPC_PUBLISHER_PUBLICATIONS_PORTAL_STATUS, publications.set_portal_status),
    RpcRoute(RPC_PUBLISHER_READINESS, images.readiness),
    RpcRoute(RPC_PUBLISHER_BATCHES_GET, publications.get_batch),
    RpcRoute(RPC_PUBLISHER_BATCHES_LIST, publications.list_batches),
    RpcRoute(RPC_PUBLISHER_BATCHES_PUBLISH, publications.publish_batch),
    RpcRoute(RPC_PUBLISHER_BATCHES_CSV, publications.batch_csv),
    RpcRoute(RPC_PUBLISHER_ACCOUNTS_GET, accounts.get_account),
    RpcRoute(RPC_PUBLISHER_ACCOUNTS_SET, accounts.set_account),
    RpcRoute(RPC_PUBLISHER_ACCOUNTS_DELETE, accounts.delete_account),
)


@dataclass(frozen=True)
class ConsumerSettings:
    upload: Redelivery
    suggest: Redelivery
    csv: Redelivery
    upload_concurrency: int = 4
    suggest_concurrency: int = 4


def register_subscribers(
    broker: NatsBroker, deps: Dependencies, consumers: ConsumerSettings
) -> None:
    register_rpc(broker, RPC_QUEUE, RPC_ROUTES, deps)
    _follow_image_events(broker, deps)
    _register_jobs(broker, deps, consumers)
    _declare_outbox_messages(broker)


def _follow_image_events(broker: NatsBroker, deps: Dependencies) -> None:
    durable = images.IMAGE_EVENTS_CONSUMER
    config = IMAGE_EVENTS_REDELIVERY.consumer_config(durable)
    config.deliver_policy = DeliverPolicy.ALL  # a first or late start replays the stream

    @broker.subscriber(
        IMAGE_EVENTS_SUBJECT,
        stream=jstream(EVENTS_STREAM),
        durable=durable,
        config=config,
        pull_sub=one_message_pulls(),
        max_workers=IMAGE_EVENTS_CONCURRENCY,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="publisher_follow_image_events",
        description="Keep the publisher's read model of stored images (inbox).",
    )
    async def follow_image_events(event: ImageEvent, msg: JetStreamMessage) -> None:
        try:
            outcome = await images.apply_image_event(event, deps.new_uow())
        except Exception as exc:
            delivered = msg.raw_message.metadata.num_delivered or 1
            delay = IMAGE_EVENTS_REDELIVERY.delay_after(delivered)
            log.warning(
                "applying image event %s failed (delivery %d of %d); retrying in %gs",
                event.id, delivered, IMAGE_EVENTS_REDELIVERY.max_deliver, delay,
                exc_info=True,
            )  # fmt: skip
            raise NackMessage(delay=delay) from exc
        if outcome is images.ImageEventOutcome.DUPLICATE:
            INBOX_DUPLICATES.labels(SERVICE, durable).inc()


def _register_jobs(broker: NatsBroker, deps: Dependencies, consumers: ConsumerSettings) -> None:
    @broker.subscriber(
        WORK_PUBLISHER_SUGGEST,
        stream=jstream(WORK_STREAM),
        durable=suggestions.SUGGEST_CONSUMER,
        pull_sub=one_message_pulls(),
        config=consumers.suggest.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_workers=consumers.suggest_concurrency,
        title="publisher_suggest",
    )
    async def suggest(job: SuggestMetadataJob, msg: JetStreamMessage) -> None:
        await run_job(
            msg,
            consumers.suggest,
            lambda d: suggestions.suggest_metadata(
                job, d, deps.new_uow(), deps.advisor, deps.clock
            ),
        )

    @broker.subscriber(
        WORK_PUBLISHER_UPLOAD,
        stream=jstream(WORK_STREAM),
        durable=delivery.UPLOAD_CONSUMER,
        pull_sub=one_message_pulls(),
        config=consumers.upload.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_workers=consumers.upload_concurrency,
        title="publisher_upload",
    )
    async def upload(job: UploadPublicationJob, msg: JetStreamMessage) -> None:
        await run_job(
            msg,
            consumers.upload,
            lambda d: delivery.upload_publication(
                job,
                d,
                deps.new_uow(),
                deps.store,
                deps.renderer,
                deps.agencies,
                deps.cipher,
                deps.slots,
                deps.clock,
                deps.max_original_bytes,
            ),
        )

    @broker.subscriber(
        WORK_PUBLISHER_CSV,
        stream=jstream(WORK_STREAM),
        durable=delivery.CSV_CONSUMER,
        pull_sub=one_message_pulls(),
        config=consumers.csv.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="publisher_csv",
    )
    async def upload_csv(job: UploadBatchCsvJob, msg: JetStreamMessage) -> None:
        await run_job(
            msg,
            consumers.csv,
            lambda d: delivery.upload_batch_csv(
                job, d, deps.new_uow(), deps.agencies, deps.cipher, deps.clock
            ),
        )


def _declare_outbox_messages(broker: NatsBroker) -> None:
    """What the outbox relay sends, declared for the AsyncAPI document only."""
    declared: tuple[tuple[str, Any, Any, str], ...] = (
        (WORK_PUBLISHER_SUGGEST, WORK_STREAM, SuggestMetadataJob, "Enqueue (suggest, outbox)."),
        (WORK_PUBLISHER_UPLOAD, WORK_STREAM, UploadPublicationJob, "Enqueue (upload, outbox)."),
        (WORK_PUBLISHER_CSV, WORK_STREAM, UploadBatchCsvJob, "Enqueue (csv, outbox)."),
        (PUBLICATION_EVENTS, EVENTS_STREAM, PublicationEvent, "Publication events (outbox)."),
    )
    for subject, stream, schema, what in declared:
        broker.publisher(subject, stream=jstream(stream), schema=schema, description=what)
