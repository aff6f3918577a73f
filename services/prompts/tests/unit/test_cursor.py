from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagetron_platform.errors import InvalidRequest
from imagetron_prompts.app.cursor import decode_cursor, encode_cursor
from imagetron_prompts.app.ports import PageKey


@given(
    created_at=st.datetimes(timezones=st.just(UTC)),
    key_id=st.uuids(),
)
def test_a_cursor_decodes_to_the_key_it_was_made_from(created_at, key_id):
    key = PageKey(created_at=created_at, id=key_id)
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    assert cursor.isascii()
    assert "=" not in cursor


def _cursor(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "bm90IGpzb24",  # "not json"
        _cursor([1, 2]),
        _cursor({"v": 2, "t": "2026-01-01T00:00:00+00:00", "id": "0" * 32}),
        _cursor({"v": 1, "t": "2026-01-01T00:00:00", "id": "0" * 32}),  # no time zone
        _cursor({"v": 1, "t": "yesterday", "id": "0" * 32}),
        _cursor({"v": 1, "t": "2026-01-01T00:00:00+00:00", "id": "nope"}),
        _cursor({"v": 1, "t": 5, "id": "0" * 32}),
        _cursor({"v": 1, "id": "0" * 32}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_an_invalid_request_about_the_cursor(cursor):
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor(cursor)
    assert caught.value.status == 422
    assert [e.loc for e in caught.value.errors or []] == [["cursor"]]


def test_padding_is_optional():
    key = PageKey(created_at=datetime(2026, 1, 1, tzinfo=UTC), id=uuid4())
    cursor = encode_cursor(key)
    assert decode_cursor(cursor + "=" * (-len(cursor) % 4)) == key
