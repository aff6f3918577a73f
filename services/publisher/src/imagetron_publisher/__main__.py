"""`imagetron-publisher`: run the publisher service."""

from __future__ import annotations

from imagetron_platform.observability import init_observability
from imagetron_platform.serve import serve
from imagetron_publisher.bootstrap import SERVICE, create_app
from imagetron_publisher.settings import PublisherSettings


def main() -> None:
    settings = PublisherSettings()
    init_observability(SERVICE, settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
