"""How a process connects to NATS, and the declared JetStream streams provisioned: what the
services' brokers (`messaging`) and the one-off provisioning (`imagetron.provision`, run by
`imagetron up` too) share. Without FastStream, so that provisioning imports only nats-py."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from imagetron_contracts.streams import STREAMS, StreamSpec
from imagetron_platform.nats_access import inbox_prefix

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from imagetron_platform.settings import NatsSettings


def nats_servers(nats_url: str) -> list[str]:
    """`IMAGETRON_NATS_URL` may name several servers of a cluster, comma-separated: the
    client connects to any of them and fails over to the others."""
    return [url.strip() for url in nats_url.split(",") if url.strip()]


def nats_tls(settings: NatsSettings) -> ssl.SSLContext | None:
    """TLS to NATS for a `tls://` URL or a CA file, checked against that CA (or the
    system's)."""
    if settings.nats_ca_file is None and not settings.nats_url.startswith("tls://"):
        return None
    return ssl.create_default_context(cafile=settings.nats_ca_file)


def nats_user(settings: NatsSettings, default: str) -> str:
    return settings.nats_user or default


def nats_connect_options(settings: NatsSettings, user: str) -> dict[str, Any]:
    """`nats.connect` keyword arguments for `settings`: credentials, TLS and the user's own
    inboxes (`user` names them when `settings` names no NATS user)."""
    options: dict[str, Any] = {"inbox_prefix": inbox_prefix(nats_user(settings, user))}
    if settings.nats_user is not None:
        options["user"] = settings.nats_user
        if settings.nats_password is not None:
            options["password"] = settings.nats_password.get_secret_value()
    if (tls := nats_tls(settings)) is not None:
        options["tls"] = tls
    return options


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
    """`replicas`: how many servers of a cluster keep the stream (3 tolerates the loss of
    one; 1 on a single server)."""
    return StreamConfig(
        num_replicas=replicas,
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=RetentionPolicy(spec.retention),
        max_age=float(spec.max_age_seconds),
        duplicate_window=float(spec.duplicate_window_seconds),
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
    )


async def provision_streams(
    js: JetStreamContext, specs: tuple[StreamSpec, ...] = STREAMS, *, replicas: int = 1
) -> None:
    """Create or update every declared stream, kept by `replicas` servers. Idempotent."""
    for spec in specs:
        config = stream_config(spec, replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
