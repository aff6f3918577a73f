"""Entrypoints: the FastStream subscribers (RPC and durable consumers)."""
