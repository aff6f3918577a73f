"""Thin edges: FastStream subscribers that parse, call a handler and map errors."""
