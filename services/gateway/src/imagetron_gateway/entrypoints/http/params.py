"""Shared pieces of the REST routers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query
from starlette.convertors import Convertor, register_url_convertor

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=500, pattern=r"^[A-Za-z0-9_=-]+$")]


class IdConvertor(Convertor[uuid.UUID]):
    """`{name:id}` in a path: only a UUID (any case) matches, so `/prompts/generate` is
    never taken for a prompt id, and a path that holds no id is simply not found."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: uuid.UUID) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())
