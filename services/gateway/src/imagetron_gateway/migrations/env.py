from imagetron_platform.migrations import run_env

from imagetron_gateway.adapters.tables import SCHEMA, metadata

run_env(metadata, schema=SCHEMA)
