from imagetron_images.adapters.tables import metadata
from imagetron_images.migrations import SCHEMA
from imagetron_platform.migrations import run_env

run_env(metadata, schema=SCHEMA)
