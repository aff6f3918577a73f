from __future__ import annotations

from imagetron_gateway.bootstrap import SERVICE, create_app
from imagetron_gateway.settings import GatewaySettings
from imagetron_platform.observability import init_observability
from imagetron_platform.serve import serve


def main() -> None:
    settings = GatewaySettings()
    init_observability(SERVICE, settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
