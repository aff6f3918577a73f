from imagetron_gateway.adapters.tables import metadata
from imagetron_gateway.migrations import SCHEMA
from imagetron_platform.migrations import run_env

run_env(metadata, schema=SCHEMA)
