"""`imagetron-images`: run the images service."""

from __future__ import annotations

from imagetron_images.bootstrap import SERVICE, create_app
from imagetron_images.settings import ImagesSettings
from imagetron_platform.observability import init_observability
from imagetron_platform.serve import serve


def main() -> None:
    settings = ImagesSettings()
    init_observability(SERVICE, settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
