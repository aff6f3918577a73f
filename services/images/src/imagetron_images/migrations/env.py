from imagetron_images.adapters.tables import SCHEMA, metadata
from imagetron_platform.migrations import run_env

run_env(metadata, schema=SCHEMA)
