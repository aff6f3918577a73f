"""Alembic environment of the `publisher` schema (see `imagetron_publisher.migrations`)."""

from imagetron_platform.migrations import run_env
from imagetron_publisher.adapters.tables import metadata
from imagetron_publisher.migrations import SCHEMA

run_env(metadata, schema=SCHEMA)
