"""Process-wide set-up: logging first, then Sentry when a DSN is configured."""

from __future__ import annotations

from typing import Any

from imagetron_platform import correlation
from imagetron_platform.logging import configure_logging
from imagetron_platform.settings import ServiceSettings


def init_observability(service: str, settings: ServiceSettings) -> None:
    configure_logging(service, settings.log_level, json=settings.log_json)
    if settings.sentry_dsn is not None:
        import sentry_sdk  # only with a DSN: its import is a fifth of a second of start-up

        sentry_sdk.init(**sentry_options(service, settings))


def sentry_options(service: str, settings: ServiceSettings) -> dict[str, Any]:
    """`sentry_sdk.init`'s arguments. Its default logging integration reports every line
    logged at ERROR with its exception (an RPC handler's or a route's unexpected failure);
    each event is tagged with the correlation id the caller was told."""
    dsn = settings.sentry_dsn
    return {
        "dsn": None if dsn is None else dsn.get_secret_value(),
        "environment": settings.environment,
        "server_name": service,
        "traces_sample_rate": settings.sentry_traces_sample_rate,
        "before_send": tag_correlation_id,
    }


def tag_correlation_id(event: Any, hint: Any) -> Any:
    """Sentry's `before_send`: runs where the event is captured, so the context's
    correlation id is the one of the request or message that failed."""
    found_by = correlation.current()
    if found_by is not None:
        event.setdefault("tags", {})["correlation_id"] = found_by
    return event
