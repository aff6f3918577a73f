"""Domain objects as contract models, without copying them field by field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class _Overlay:
    """`source`'s attributes, except those given in `values`."""

    def __init__(self, source: object, values: dict[str, Any]) -> None:
        self._source = source
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._source, name)


def view(model: type[M], source: object, **values: Any) -> M:
    """`model` validated from `source`'s attributes of the same names
    (`model_validate(from_attributes=True)`), with `values` for the fields the source
    computes or names differently. A field that is neither is a ValidationError, so a
    contract field added without a source fails the tests instead of going missing."""
    return model.model_validate(
        _Overlay(source, values) if values else source, from_attributes=True
    )
