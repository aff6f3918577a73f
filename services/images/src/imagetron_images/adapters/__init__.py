"""Adapters: PostgreSQL, the providers, downloads, image files and object storage."""
