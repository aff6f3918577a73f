"""Process-wide set-up: logging first, then Sentry when a DSN is configured."""

from __future__ import annotations

from imagetron_platform.logging import configure_logging
from imagetron_platform.settings import ServiceSettings


def init_observability(service: str, settings: ServiceSettings) -> None:
    configure_logging(service, settings.log_level, json=settings.log_json)
    if settings.sentry_dsn is not None:
        import sentry_sdk  # only with a DSN: its import is a fifth of a second of start-up

        sentry_sdk.init(
            dsn=settings.sentry_dsn.get_secret_value(),
            environment=settings.environment,
            server_name=service,
            traces_sample_rate=settings.sentry_traces_sample_rate,
        )
