from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel, ValidationError

from imagetron_platform.views import view


class Shown(BaseModel):
    id: int
    name: str
    size: int
    label: str | None = None


@dataclass
class Entity:
    id: int
    name: str
    size_bytes: int
    secret: str = "never shown"


def test_fields_of_the_same_name_are_taken_and_the_others_given():
    shown = view(Shown, Entity(1, "pear", 10), size=10, label="fruit")
    assert shown == Shown(id=1, name="pear", size=10, label="fruit")


def test_a_given_value_wins_over_the_attribute():
    assert view(Shown, Entity(1, "pear", 10), name="apple", size=1).name == "apple"


def test_a_field_without_a_source_fails_instead_of_going_missing():
    with pytest.raises(ValidationError, match="size"):
        view(Shown, Entity(1, "pear", 10))
