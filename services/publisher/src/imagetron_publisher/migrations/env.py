"""Alembic environment of the `publisher` schema (see `imagetron_publisher.migrations`)."""

from imagetron_platform.migrations import run_env
from imagetron_publisher.adapters.tables import SCHEMA, metadata

run_env(metadata, schema=SCHEMA)
