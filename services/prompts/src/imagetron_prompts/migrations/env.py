"""Alembic environment of the `prompts` schema (run by `imagetron_prompts.migrations.upgrade`)."""

from imagetron_platform.migrations import run_env
from imagetron_prompts.adapters.tables import metadata
from imagetron_prompts.migrations import SCHEMA

run_env(metadata, schema=SCHEMA)
