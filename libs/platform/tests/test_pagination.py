from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagetron_platform.errors import InvalidRequest
from imagetron_platform.pagination import Cursors, PageKey, page_size


@dataclass(frozen=True)
class IndexedKey:
    created_at: datetime
    group_id: UUID
    index: int


KEYS = Cursors(PageKey)
INDEXED = Cursors(IndexedKey)


@given(created_at=st.datetimes(timezones=st.just(UTC)), key_id=st.uuids())
def test_a_cursor_decodes_to_the_key_it_was_made_from(created_at, key_id):
    key = PageKey(created_at=created_at, id=key_id)
    cursor = KEYS.encode(key)
    assert KEYS.decode(cursor) == key
    assert cursor.isascii()
    assert "=" not in cursor


@given(
    created_at=st.datetimes(timezones=st.just(UTC)),
    group_id=st.uuids(),
    index=st.integers(0, 2**31),
)
def test_keys_of_any_shape_round_trip(created_at, group_id, index):
    key = IndexedKey(created_at, group_id, index)
    assert INDEXED.decode(INDEXED.encode(key)) == key


def _cursor(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


NOW = "2026-01-01T00:00:00+00:00"
ID = "0" * 32


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "bm90IGpzb24",  # "not json"
        _cursor([1, 2]),
        _cursor({"created_at": NOW, "id": ID}),  # no version
        _cursor({"v": 2, "created_at": NOW, "id": ID}),
        _cursor({"v": 1, "created_at": "2026-01-01T00:00:00", "id": ID}),  # no time zone
        _cursor({"v": 1, "created_at": "yesterday", "id": ID}),
        _cursor({"v": 1, "created_at": NOW, "id": "nope"}),
        _cursor({"v": 1, "created_at": 5, "id": ID}),  # a number is not a time
        _cursor({"v": 1, "id": ID}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_an_invalid_request_about_the_cursor(cursor):
    with pytest.raises(InvalidRequest) as caught:
        KEYS.decode(cursor)
    assert caught.value.status == 422
    assert [e.loc for e in caught.value.errors or []] == [["cursor"]]


def test_a_cursor_of_another_listing_is_refused():
    other = KEYS.encode(PageKey(datetime(2026, 1, 1, tzinfo=UTC), uuid4()))
    with pytest.raises(InvalidRequest):
        INDEXED.decode(other)
    indexed = INDEXED.encode(IndexedKey(datetime(2026, 1, 1, tzinfo=UTC), uuid4(), 3))
    assert json.loads(base64.urlsafe_b64decode(indexed + "==="))["index"] == 3
    with pytest.raises(InvalidRequest):
        INDEXED.decode(_cursor({"v": 1, "created_at": NOW, "group_id": ID, "index": "3"}))


def test_padding_is_optional():
    key = PageKey(created_at=datetime(2026, 1, 1, tzinfo=UTC), id=uuid4())
    cursor = KEYS.encode(key)
    assert KEYS.decode(cursor + "=" * (-len(cursor) % 4)) == key


def test_a_page_says_whether_another_follows():
    rows = [PageKey(datetime(2026, 1, d, tzinfo=UTC), uuid4()) for d in range(3, 0, -1)]
    full = KEYS.page(rows, 2, lambda r: r)
    assert full.items == rows[:2]
    assert full.next_cursor is not None
    assert KEYS.after(full.next_cursor) == rows[1]
    last = KEYS.page(rows[:2], 2, lambda r: r)
    assert last.items == rows[:2]
    assert last.next_cursor is None
    assert KEYS.page([], 2, lambda r: r).next_cursor is None
    assert KEYS.after(None) is None
    assert KEYS.after("") is None


def test_page_size_defaults():
    assert page_size(None) == 50
    assert page_size(7) == 7


def test_keys_must_be_dataclasses():
    with pytest.raises(TypeError):
        Cursors(dict)
