"""``python -m imagetron_sandbox`` / ``imagetron-sandbox``: serve the sandbox with uvicorn."""

from __future__ import annotations

import uvicorn

from imagetron_sandbox.app import create_app
from imagetron_sandbox.settings import SandboxSettings


def main() -> None:
    settings = SandboxSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="none",  # it serves no WebSockets: uvicorn's protocol for them is not even loaded
    )


if __name__ == "__main__":
    main()
