"""The service's FastStream subscribers: parse, call a handler, map the outcome to an ack.

Request/reply (core NATS, queue group `images`) answers the gateway; durable pull consumers
on JetStream do the asynchronous work. A job that fails transiently is NAKed with a growing
delay (JetStream redelivers a plain NAK at once) until its last delivery, where the handler
gives up and records the failure: nothing is retried for ever, nothing waits for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream import AckPolicy
from faststream.nats import NatsBroker

from imagetron_contracts.models.images import (
    ImageEvent,
    PersistImageJob,
    ProviderCallback,
    SubmitTaskJob,
    TaskEvent,
)
from imagetron_contracts.models.prompts import GenerationReservation
from imagetron_contracts.streams import (
    EVENTS_STREAM,
    RPC_IMAGES_IMAGES_CONTENT_URL,
    RPC_IMAGES_IMAGES_GET,
    RPC_IMAGES_IMAGES_LIST,
    RPC_IMAGES_IMAGES_RETRY,
    RPC_IMAGES_IMAGES_THUMBNAIL_URL,
    RPC_IMAGES_IMAGINE,
    RPC_IMAGES_TASKS_CANCEL,
    RPC_IMAGES_TASKS_GET,
    RPC_IMAGES_TASKS_LIST,
    RPC_IMAGES_TASKS_PREVIEW_URL,
    RPC_IMAGES_TASKS_REQUESTED,
    RPC_IMAGES_TASKS_REROLL,
    RPC_IMAGES_TASKS_UPSCALE,
    RPC_IMAGES_TASKS_VARIATION,
    RPC_PROMPTS_GENERATION_RELEASE,
    RPC_PROMPTS_GENERATION_RESERVE,
    WEBHOOKS_STREAM,
    WORK_IMAGES_PERSIST,
    WORK_IMAGES_SUBMIT,
    WORK_STREAM,
)
from imagetron_images.adapters.goapi import PROVIDER as GOAPI
from imagetron_images.adapters.midjourney_proxy import PROVIDER as MIDJOURNEY_PROXY
from imagetron_images.adapters.replicate import PROVIDER as REPLICATE
from imagetron_images.app import callbacks, images, previews, tasks
from imagetron_images.app.dependencies import Dependencies
from imagetron_platform.jobs import run_job
from imagetron_platform.messaging import JetStreamMessage, Redelivery, jstream, one_message_pulls
from imagetron_platform.rpc import RpcRoute, register_rpc

RPC_QUEUE = "images"
SUBMIT_CONSUMER = tasks.SUBMIT_CONSUMER
PERSIST_CONSUMER = images.PERSIST_CONSUMER
#: Providers that call back (the synchronous OpenAI Images does not): `webhooks.<provider>`.
CALLBACK_PROVIDERS = (GOAPI, MIDJOURNEY_PROXY, REPLICATE)
# The channels' addresses in contracts/asyncapi.yaml.
TASK_EVENTS = "events.images.{owner_id}.task.{event_type}"
IMAGE_EVENTS = "events.images.{owner_id}.image.{event_type}"


@dataclass(frozen=True)
class ConsumerSettings:
    submit: Redelivery
    persist: Redelivery
    callbacks: Redelivery
    #: Persist jobs taken at once: more than the download slots, so that while some wait
    #: for one (their owner or host is at its limit) others' jobs are still taken.
    persist_in_flight: int = 1
    callback_concurrency: int = 1


#: The gateway's requests and the handlers that answer them (dependencies by name).
RPC_ROUTES = (
    RpcRoute(RPC_IMAGES_IMAGINE, tasks.imagine),
    RpcRoute(RPC_IMAGES_TASKS_REROLL, tasks.reroll),
    RpcRoute(RPC_IMAGES_TASKS_VARIATION, tasks.variation),
    RpcRoute(RPC_IMAGES_TASKS_UPSCALE, tasks.upscale),
    RpcRoute(RPC_IMAGES_TASKS_CANCEL, tasks.cancel_task),
    RpcRoute(RPC_IMAGES_TASKS_GET, tasks.get_task),
    RpcRoute(RPC_IMAGES_TASKS_REQUESTED, tasks.requested_task),
    RpcRoute(RPC_IMAGES_TASKS_LIST, tasks.list_tasks),
    RpcRoute(RPC_IMAGES_IMAGES_GET, images.get_image),
    RpcRoute(RPC_IMAGES_IMAGES_LIST, images.list_images),
    RpcRoute(RPC_IMAGES_IMAGES_CONTENT_URL, images.image_content_url),
    RpcRoute(RPC_IMAGES_IMAGES_THUMBNAIL_URL, images.image_thumbnail_url),
    RpcRoute(RPC_IMAGES_TASKS_PREVIEW_URL, previews.task_preview_url),
    RpcRoute(RPC_IMAGES_IMAGES_RETRY, images.retry_image),
)


def register_subscribers(
    broker: NatsBroker, deps: Dependencies, consumers: ConsumerSettings
) -> None:
    register_rpc(broker, RPC_QUEUE, RPC_ROUTES, deps)
    _register_jobs(broker, deps, consumers)
    _declare_outbox_messages(broker)
    _declare_requests(broker)


def _register_jobs(broker: NatsBroker, deps: Dependencies, consumers: ConsumerSettings) -> None:
    @broker.subscriber(
        WORK_IMAGES_SUBMIT,
        stream=jstream(WORK_STREAM),
        durable=SUBMIT_CONSUMER,
        pull_sub=one_message_pulls(),
        config=consumers.submit.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def submit_task(job: SubmitTaskJob, msg: JetStreamMessage) -> None:
        await run_job(
            msg,
            consumers.submit,
            lambda delivery: tasks.submit_task(job, delivery, deps.new_uow(), deps.providers),
        )

    for provider in CALLBACK_PROVIDERS:
        _subscribe_callbacks(broker, deps, consumers, provider)

    @broker.subscriber(
        WORK_IMAGES_PERSIST,
        stream=jstream(WORK_STREAM),
        durable=PERSIST_CONSUMER,
        pull_sub=one_message_pulls(),
        config=consumers.persist.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_workers=consumers.persist_in_flight,
    )
    async def persist_image(job: PersistImageJob, msg: JetStreamMessage) -> None:
        await run_job(
            msg,
            consumers.persist,
            lambda delivery: images.persist_image(
                job,
                delivery,
                deps.new_uow(),
                deps.downloader,
                deps.inspector,
                deps.store,
                deps.providers,
                deps.download_slots,
            ),
        )


def _subscribe_callbacks(
    broker: NatsBroker, deps: Dependencies, consumers: ConsumerSettings, provider: str
) -> None:
    """`webhooks.<provider>`: callbacks the gateway has verified, applied to their task by
    the same handler and rules for every provider. All are subscribed whatever the default
    provider is, so tasks of a provider that is no longer the default still finish."""

    @broker.subscriber(
        f"webhooks.{provider}",
        stream=jstream(WEBHOOKS_STREAM),
        durable=callbacks.callback_consumer(provider),
        pull_sub=one_message_pulls(),
        config=consumers.callbacks.consumer_config(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_workers=consumers.callback_concurrency,
        title=f"images_apply_webhooks_{provider}",
    )
    async def apply_callback(callback: ProviderCallback, msg: JetStreamMessage) -> None:
        await run_job(
            msg,
            consumers.callbacks,
            lambda delivery: callbacks.apply_provider_callback(
                callback, delivery, deps.new_uow(), deps.providers
            ),
        )


def _declare_requests(broker: NatsBroker) -> None:
    """What the service asks other services (adapters.prompt_ledger sends them through
    its RpcClient), declared for the AsyncAPI document only."""
    for subject, what in (
        (RPC_PROMPTS_GENERATION_RESERVE, "Reserve a generation on a prompt before its task."),
        (RPC_PROMPTS_GENERATION_RELEASE, "Let go of a reservation whose task was not created."),
    ):
        broker.publisher(subject, schema=GenerationReservation, description=what)


def _declare_outbox_messages(broker: NatsBroker) -> None:
    """What the outbox relay sends, declared for the AsyncAPI document only: the relay
    publishes rows through `broker.publish`, never through these publishers."""
    for subject, stream, schema, what in (
        (WORK_IMAGES_SUBMIT, WORK_STREAM, SubmitTaskJob, "Enqueue a submission (outbox)."),
        (WORK_IMAGES_PERSIST, WORK_STREAM, PersistImageJob, "Enqueue persistence (outbox)."),
        (TASK_EVENTS, EVENTS_STREAM, TaskEvent, "Task events, via the outbox."),
        (IMAGE_EVENTS, EVENTS_STREAM, ImageEvent, "Image events, via the outbox."),
    ):
        broker.publisher(subject, stream=jstream(stream), schema=schema, description=what)
