from __future__ import annotations

from pathlib import Path

from imagetron_platform import migrations

LOCATION = Path(__file__).parent


def upgrade(database_url: str) -> None:
    migrations.upgrade(database_url, LOCATION)
