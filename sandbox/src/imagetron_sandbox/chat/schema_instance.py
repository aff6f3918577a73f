"""A deterministic JSON instance for a JSON Schema, with text made from the request's words.

Covers what structured-output schemas use: objects (every property), arrays (minItems /
maxItems, 3-5 items by default, prefixItems, uniqueItems), strings (enum, const, minLength,
maxLength, common formats, a best effort at pattern), numbers and integers within their
bounds and multipleOf, booleans, null, type lists, anyOf / oneOf / allOf, and local $ref
(``#/$defs/...``, ``#/definitions/...``, any JSON pointer) with a recursion brake.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pydantic import JsonValue

from imagetron_sandbox.chat.subjects import COLOURS, STYLES, Topic
from imagetron_sandbox.determinism import Dice

Schema = dict[str, JsonValue]
MAX_DEPTH = 8
DEFAULT_MIN_ITEMS = 3
DEFAULT_MAX_ITEMS = 5
_UNBOUNDED = 10**9
_UNIQUE_RETRIES = 20


class SchemaError(ValueError):
    """The schema cannot be followed (a $ref to nowhere, a non-object schema)."""


@dataclass(frozen=True, slots=True)
class _Context:
    """Where in the instance we are: the property name, the array index, the nesting."""

    key: str
    index: int
    depth: int
    refs: tuple[str, ...] = ()
    recursive: bool = False

    @property
    def minimal(self) -> bool:
        """Inside a recursive $ref (or very deep): keep only what the schema demands."""
        return self.recursive or self.depth >= MAX_DEPTH

    def child(self, key: str, index: int) -> _Context:
        return replace(self, key=key, index=index, depth=self.depth + 1)

    def entering(self, ref: str) -> _Context:
        if ref in self.refs:
            return replace(self, recursive=True)
        return replace(self, refs=(*self.refs, ref))


class InstanceGenerator:
    def __init__(self, root: Schema, topic: Topic, dice: Dice, suffix: str = "") -> None:
        self._root = root
        self._topic = topic
        self._dice = dice
        self._suffix = suffix
        self._counter = 0
        self._phrases = 0

    def generate(self) -> JsonValue:
        return self._value(self._root, _Context(key="", index=0, depth=0))

    # --- dispatch -------------------------------------------------------------------

    def _value(self, schema: JsonValue, ctx: _Context) -> JsonValue:
        if ctx.depth > 3 * MAX_DEPTH:
            raise SchemaError("schema requires unbounded nesting")
        if schema is True or schema == {}:
            return self._string({}, ctx)
        if not isinstance(schema, dict):
            raise SchemaError(f"not a schema: {schema!r}")
        if isinstance(ref := schema.get("$ref"), str):
            ctx = ctx.entering(ref)
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(enum := schema.get("enum"), list) and enum:
            return self._dice.pick(enum)
        if isinstance(parts := schema.get("allOf"), list):
            return self._value(
                _merge([schema, *(self._resolve(_as_schema(p)) for p in parts)]), ctx
            )
        for combinator in ("anyOf", "oneOf"):
            if isinstance(options := schema.get(combinator), list) and options:
                rest = {k: v for k, v in schema.items() if k != combinator}
                return self._value(_merge([rest, self._choose(options, ctx)]), ctx)
        match _type_of(schema, prefer_null=ctx.minimal):
            case "object":
                return self._object(schema, ctx)
            case "array":
                return self._array(schema, ctx)
            case "integer":
                return self._integer(schema)
            case "number":
                return self._number(schema)
            case "boolean":
                return self._dice.unit() < 0.5
            case "null":
                return None
            case _:
                return self._string(schema, ctx)

    def _resolve(self, schema: Schema) -> Schema:
        seen: set[str] = set()
        while isinstance(ref := schema.get("$ref"), str):
            if ref in seen:
                raise SchemaError(f"$ref cycle at {ref}")
            seen.add(ref)
            target = self._pointer(ref)
            schema = _merge([target, {k: v for k, v in schema.items() if k != "$ref"}])
        return schema

    def _pointer(self, ref: str) -> Schema:
        if not ref.startswith("#"):
            raise SchemaError(f"only local $ref is supported, got {ref!r}")
        node: JsonValue = self._root
        for raw in ref[1:].lstrip("/").split("/") if ref not in ("#", "#/") else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SchemaError(f"$ref {ref!r} points nowhere")
        return _as_schema(node)

    def _choose(self, options: Sequence[JsonValue], ctx: _Context) -> Schema:
        schemas = [self._resolve(_as_schema(option)) for option in options]
        non_null = [s for s in schemas if s.get("type") != "null"]
        if ctx.minimal and len(non_null) < len(schemas):
            return {"type": "null"}
        return non_null[0] if non_null else schemas[0]

    # --- containers -----------------------------------------------------------------

    def _object(self, schema: Schema, ctx: _Context) -> dict[str, JsonValue]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required_keys = (
            [k for k in required if isinstance(k, str)] if isinstance(required, list) else []
        )
        keys = required_keys if ctx.minimal else [*properties]
        keys += [k for k in required_keys if k not in keys]
        result: dict[str, JsonValue] = {}
        for key in keys:
            child = properties.get(key, {})
            result[key] = self._value(child, ctx.child(key, ctx.index))
        minimum = _int(schema.get("minProperties"), 0)
        extra = schema.get("additionalProperties", True)
        while len(result) < minimum and extra is not False:
            key = f"extra_{len(result) + 1}"
            child = extra if isinstance(extra, dict) else {"type": "string"}
            result[key] = self._value(child, ctx.child(key, ctx.index))
        return result

    def _array(self, schema: Schema, ctx: _Context) -> list[JsonValue]:
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        items = schema.get("items", {})
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), _UNBOUNDED)
        if items is False:
            high = min(high, len(prefix))
        if ctx.minimal:
            count = low
        else:
            count = self._dice.between(DEFAULT_MIN_ITEMS, DEFAULT_MAX_ITEMS)
            count = max(low, min(high, count))
        unique = schema.get("uniqueItems") is True
        result: list[JsonValue] = []
        for index in range(count):
            child = prefix[index] if index < len(prefix) else items
            if isinstance(items, list):  # draft-04 tuple form
                child = items[index] if index < len(items) else {}
            value = self._value(child, ctx.child(ctx.key, index))
            for retry in range(1, _UNIQUE_RETRIES + 1):
                if not unique or value not in result:
                    break
                value = self._value(child, ctx.child(ctx.key, index + retry * count))
            if unique and value in result:
                if len(result) >= low:
                    break  # the item schema has run out of distinct values
                value = self._make_unique(value, result, index)
            result.append(value)
        return result

    def _make_unique(self, value: JsonValue, taken: list[JsonValue], index: int) -> JsonValue:
        if isinstance(value, str):
            candidate = f"{value} {index + 1}"
            return candidate if candidate not in taken else f"{value} #{len(taken) + 1}"
        if isinstance(value, bool):
            return not value
        if isinstance(value, int | float):
            return max((v for v in taken if isinstance(v, int | float)), default=0) + 1
        return value

    # --- scalars --------------------------------------------------------------------

    def _integer(self, schema: Schema) -> int:
        low, high = _bounds(schema, integer=True)
        step = _positive_number(schema.get("multipleOf"))
        if step is not None:
            return int(self._multiple(low, high, step))
        return self._dice.between(int(low), int(high))

    def _number(self, schema: Schema) -> float | int:
        low, high = _bounds(schema, integer=False)
        step = _positive_number(schema.get("multipleOf"))
        if step is not None:
            return self._multiple(low, high, step)
        value = round(self._dice.uniform(low, high), 2)
        return min(max(value, low), high)

    def _multiple(self, low: float, high: float, step: float) -> float | int:
        """A multiple of ``step`` in [low, high] that survives float division checks."""
        first, last = math.ceil(low / step), math.floor(high / step)
        start = self._dice.between(first, last)
        nearby = (start + offset * sign for offset in range(100) for sign in (1, -1))
        for k in (k for k in nearby if first <= k <= last):
            value = round(k * step, 10)
            value = int(value) if value == int(value) else value
            if (value / step) == int(value / step):
                return value
        return first * step

    def _string(self, schema: Schema, ctx: _Context) -> str:
        low = _int(schema.get("minLength"), 0)
        high = _int(schema.get("maxLength"), _UNBOUNDED)
        fmt = schema.get("format")
        pattern = schema.get("pattern")
        candidates, phrase = self._string_candidates(ctx, fmt if isinstance(fmt, str) else None)
        if isinstance(pattern, str):
            fitting = [c for c in candidates if _matches(pattern, c)]
            candidates = fitting or candidates
        self._counter += 1
        if candidates[0] == phrase:
            self._phrases += 1  # the next free-text string gets the next subject
        return _fit_length(candidates[0], low, high, filler=self._topic.word(ctx.index))

    def _string_candidates(self, ctx: _Context, fmt: str | None) -> tuple[list[str], str]:
        """Candidate strings, best first, and the free-text phrase among them."""
        dice = self._dice.fork("string", ctx.key, ctx.index, self._counter)
        word = self._topic.word(ctx.index)
        slug = "-".join(self._topic.words[:4]) or "lake"
        formatted = {
            "date-time": f"2025-{ctx.index % 12 + 1:02d}-15T12:00:00Z",
            "date": f"2025-{ctx.index % 12 + 1:02d}-15",
            "time": "12:00:00",
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{slug}/{ctx.index + 1}",
            "url": f"https://example.com/{slug}/{ctx.index + 1}",
            "hostname": "example.com",
            "ipv4": f"192.0.2.{ctx.index % 250 + 1}",
            "uuid": str(uuid.UUID(bytes=dice.fork("uuid").between(0, 2**64).to_bytes(16, "big"))),
        }
        phrase = self._topic.subject(self._phrases, self._dice)
        if self._suffix:
            phrase = f"{phrase} {self._suffix}"
        if fmt in formatted:
            return [formatted[fmt]], phrase
        key = ctx.key.lower()
        if any(hint in key for hint in ("title", "name", "label", "caption", "heading")):
            first = " ".join(self._topic.words[ctx.index % max(1, len(self._topic.words)) :][:3])
            first = first or self._topic.phrase
            return [f"{first.title()} {ctx.index + 1}", phrase, word], phrase
        if any(hint in key for hint in ("tag", "keyword", "word")):
            return [word, slug, phrase], phrase
        if key == "id" or key.endswith(("_id", "slug")):
            return [f"{slug}-{ctx.index + 1}", word, phrase], phrase
        if "style" in key:
            return [dice.pick(STYLES), phrase], phrase
        if "colo" in key:
            return [dice.pick(COLOURS), phrase], phrase
        return [phrase, word, slug, str(ctx.index + 1)], phrase


# --- helpers ----------------------------------------------------------------------------


def _as_schema(value: JsonValue) -> Schema:
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(f"not a schema: {value!r}")
    return value


def _merge(schemas: Sequence[Schema]) -> Schema:
    """A shallow allOf: later keywords win, properties and required are united."""
    merged: dict[str, JsonValue] = {}
    properties: dict[str, JsonValue] = {}
    required: list[JsonValue] = []
    for schema in schemas:
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                properties.update(value)
            elif key == "required" and isinstance(value, list):
                required += [k for k in value if k not in required]
            elif key != "allOf":
                merged[key] = value
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _type_of(schema: Schema, *, prefer_null: bool) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        names = [t for t in declared if isinstance(t, str)]
        if prefer_null and "null" in names:
            return "null"
        return next((t for t in names if t != "null"), "null")
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "string"


def _positive_number(value: JsonValue) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _int(value: JsonValue, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _bounds(schema: Schema, *, integer: bool) -> tuple[float, float]:
    """Closed bounds [low, high]; unbounded sides default to 1..100 around the other side."""
    low: float | None = None
    high: float | None = None
    nudge = 1 if integer else 0.01
    if isinstance(v := schema.get("minimum"), int | float):
        low = v
    if isinstance(v := schema.get("exclusiveMinimum"), int | float) and not isinstance(v, bool):
        low = v + nudge if low is None else max(low, v + nudge)
    if isinstance(v := schema.get("maximum"), int | float):
        high = v
    if isinstance(v := schema.get("exclusiveMaximum"), int | float) and not isinstance(v, bool):
        high = v - nudge if high is None else min(high, v - nudge)
    if low is None and high is None:
        low, high = 1, 100
    elif low is None:
        assert high is not None
        low = min(1, high) if high >= 1 else high - 100
    elif high is None:
        high = max(100, low) if low <= 100 else low + 100
    if integer:
        low, high = math.ceil(low), math.floor(high)
    return low, max(low, high)


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _fit_length(text: str, low: int, high: int, *, filler: str) -> str:
    while len(text) < low:
        text = f"{text} {filler}"
    if len(text) > high:
        cut = text[:high]
        if " " in cut and high < len(text) and text[high] != " ":
            cut = cut.rsplit(" ", 1)[0]
        text = cut.rstrip(" ,")
        if len(text) < low:
            text = (text + " " + filler * high)[:high]
    return text
