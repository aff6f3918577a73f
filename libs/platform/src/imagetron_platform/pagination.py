"""Keyset pagination, one way for every listing: opaque cursors and pages.

A cursor is the url-safe base64 (unpadded) of a small JSON document holding the sort key
of the last item a page showed, so the next page starts strictly after it however many rows
are inserted meanwhile, and each page is an index range scan however deep the client pages.
Clients treat cursors as opaque; one that does not decode to a key is a 422 about `cursor`.

A listing asks its repository for one row more than the page holds: whether it exists says
if there is a next page (`Cursors.page`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import TypeAdapter

from imagetron_contracts.models.common import FieldError
from imagetron_platform.errors import InvalidRequest

DEFAULT_PAGE_SIZE = 50
#: Written into every cursor; a cursor of another version is refused (list again).
CURSOR_VERSION = 1

K = TypeVar("K")
T = TypeVar("T")


@dataclass(frozen=True)
class PageKey:
    """Where a newest-first page ends: the last item's creation time and id."""

    created_at: datetime
    id: UUID


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class Cursors(Generic[K]):
    """Cursors for one kind of key: a dataclass whose fields are datetimes (time-zone
    aware), UUIDs, ints or strings."""

    def __init__(self, key_type: type[K]) -> None:
        if not dataclasses.is_dataclass(key_type):
            raise TypeError(f"{key_type!r} is not a dataclass")
        self._adapter: TypeAdapter[K] = TypeAdapter(key_type)

    def encode(self, key: K) -> str:
        document = {"v": CURSOR_VERSION, **self._adapter.dump_python(key, mode="json")}
        raw = json.dumps(document, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, cursor: str) -> K:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            document = json.loads(raw)
            if not isinstance(document, dict) or document.pop("v", None) != CURSOR_VERSION:
                raise ValueError("not a cursor of this version")
            # Strict: a number is not a time, a string not an index.
            key = self._adapter.validate_json(json.dumps(document), strict=True)
            if any(_naive(value) for value in vars(key).values()):
                raise ValueError("a time without a time zone")
        except (binascii.Error, ValueError) as exc:  # ValidationError, JSON and Unicode errors
            raise InvalidRequest(
                "The cursor is not valid; list again from the first page.",
                errors=[FieldError(loc=["cursor"], msg="Not a cursor from a previous page.")],
            ) from exc
        return key

    def after(self, cursor: str | None) -> K | None:
        """The key a request's cursor stands for; None for the first page."""
        return self.decode(cursor) if cursor else None

    def page(self, rows: Sequence[T], limit: int, key: Callable[[T], K]) -> Page[T]:
        """The first `limit` of `rows` (fetched with `limit + 1`), and the cursor of the
        next page if there is one."""
        items = list(rows[:limit])
        next_cursor = self.encode(key(items[-1])) if len(rows) > limit and items else None
        return Page(items, next_cursor)


def page_size(limit: int | None) -> int:
    """The page size a request asks for (the contracts bound it), or the default."""
    return limit or DEFAULT_PAGE_SIZE


def _naive(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is None
