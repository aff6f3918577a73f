"""Event schemas evolve safely: an event written by the previous release is still accepted
by today's consumers, so new fields must be optional (with defaults).

The previous release's schemas are kept in `previous_release/` (copied from git at
`PREVIOUS_RELEASE`, so a shallow clone runs the test too). For each event
payload it declared, the smallest event that release could send (its required fields only,
each with a valid value) must validate against the current generated model the consumers
parse events with."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
#: The last main before the event schemas started to change for the hardening release;
#: its `contracts/schemas/*.yaml` are in this folder. At each release, copy them anew.
PREVIOUS_RELEASE = "982a8a3"
PREVIOUS_SCHEMAS = Path(__file__).resolve().parent / "previous_release"
#: Payloads that travel on `events.>`: schema file → names.
EVENT_PAYLOADS = {
    "images.yaml": ("TaskEvent", "ImageEvent"),
    "prompts.yaml": ("PromptEvent",),
    "chats.yaml": ("ChatEvent",),
}


def _old_schemas(file: str) -> dict[str, Any]:
    defs: dict[str, Any] = yaml.safe_load((PREVIOUS_SCHEMAS / file).read_text())["$defs"]
    return defs


def minimal(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The smallest instance of `schema` (the subset of JSON Schema our contracts use)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        name = ref.rsplit("/", 1)[-1]
        if ref.startswith("#/$defs/"):
            return minimal(defs[name], defs)
        file = ref.split("#")[0]
        return minimal(_old_schemas(file)[name], _old_schemas(file))
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return minimal(next(s for s in schema[key] if s.get("type") != "null"), defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        return {
            name: minimal(schema["properties"][name], defs) for name in schema.get("required", [])
        }
    if kind == "array":
        return [minimal(schema["items"], defs) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    formats = {
        "uuid": "00000000-0000-4000-8000-000000000000",
        "date-time": "2026-11-24T00:00:00Z",
        "date": "2026-11-24",
        "uri": "https://example.com/a.png",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    if "pattern" in schema:
        candidates = ("x", "1:1", "1", "task.created", "itk_x")
        return next(c for c in candidates if re.search(schema["pattern"], c))
    return "x" * max(1, schema.get("minLength", 1))


@pytest.mark.parametrize(
    ("file", "name"),
    [(file, name) for file, names in EVENT_PAYLOADS.items() for name in names],
)
def test_todays_consumers_accept_the_previous_releases_smallest_event(file, name):
    defs = _old_schemas(file)
    event = minimal(defs[name], defs)
    model = getattr(importlib.import_module(f"imagetron_contracts.models.{file[:-5]}"), name)
    model.model_validate(event)


@pytest.mark.parametrize(
    ("file", "name"),
    [(file, name) for file, names in EVENT_PAYLOADS.items() for name in names],
)
def test_fields_added_since_the_previous_release_are_optional(file, name):
    old = _old_schemas(file)[name]
    new = yaml.safe_load((ROOT / "contracts" / "schemas" / file).read_text())["$defs"][name]
    added = set(new.get("required", [])) - set(old.get("required", []))
    assert not added, f"{name}: new required fields {sorted(added)} break older events"
    assert set(old.get("properties", {})) <= set(new.get("properties", {})), name
