from __future__ import annotations

from imagetron_notifier.bootstrap import SERVICE, create_app
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform.observability import init_observability
from imagetron_platform.serve import serve


def main() -> None:
    settings = NotifierSettings()
    init_observability(SERVICE, settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
