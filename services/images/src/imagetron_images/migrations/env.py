from imagetron_platform.migrations import run_env

from imagetron_images.adapters.tables import SCHEMA, metadata

run_env(metadata, schema=SCHEMA)
