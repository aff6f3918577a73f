"""`imagetron-prompts`: run the prompts service until SIGINT/SIGTERM."""

from __future__ import annotations

from imagetron_platform.observability import init_observability
from imagetron_platform.serve import serve
from imagetron_prompts.bootstrap import create_app
from imagetron_prompts.entrypoints.messaging import SERVICE
from imagetron_prompts.settings import PromptsSettings


def main() -> None:
    settings = PromptsSettings()
    init_observability(SERVICE, settings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
