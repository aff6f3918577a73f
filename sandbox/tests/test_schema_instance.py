"""JSON instances generated from schemas validate against them."""

from __future__ import annotations

import jsonschema
import pytest

from imagetron_sandbox.chat.schema_instance import InstanceGenerator, SchemaError
from imagetron_sandbox.chat.subjects import Topic
from imagetron_sandbox.determinism import Dice

SCHEMAS = [
    {"type": "string", "minLength": 3, "maxLength": 5},
    {"type": "string", "maxLength": 0},
    {"type": "string", "minLength": 200},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email"},
    {"type": "string", "pattern": "^[a-z-]+$"},
    {"type": "integer", "minimum": -5, "maximum": -3},
    {"type": "integer", "exclusiveMinimum": 7, "exclusiveMaximum": 9},
    {"type": "integer", "multipleOf": 7, "minimum": 1, "maximum": 30},
    {"type": "number", "multipleOf": 0.1, "minimum": 0.25, "maximum": 0.75},
    {"type": "number", "minimum": 1000},
    {"type": "number", "maximum": -1000},
    {"type": "boolean"},
    {"type": "null"},
    {"const": {"fixed": [1, 2]}},
    {"enum": ["a", 3, None]},
    {"type": ["null", "integer"], "minimum": 4, "maximum": 4},
    {"type": "array", "items": {"type": "integer"}, "minItems": 7},
    {"type": "array", "items": {"type": "string"}, "maxItems": 1},
    {"type": "array", "items": {"enum": ["x", "y", "z"]}, "minItems": 3, "uniqueItems": True},
    {"type": "array", "items": {"type": "string"}, "minItems": 5, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
    {"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]},
               {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
    {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 4}]},
    {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    {
        "$ref": "#/definitions/node",
        "definitions": {
            "node": {
                "type": "object",
                "required": ["name", "children"],
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/definitions/node"}},
                },
            }
        },
    },
    {
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid"}, "url": {"format": "uri"},
                       "colour": {"type": "string"}, "style": {"type": "string"}},
    },
]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS)
def test_generated_instances_validate(schema):
    for seed in range(3):
        topic = Topic.of("a misty harbor with fishing boats at dawn")
        instance = InstanceGenerator(schema, topic, Dice(seed)).generate()
        jsonschema.validate(instance, schema, format_checker=jsonschema.FormatChecker())
        again = InstanceGenerator(schema, topic, Dice(seed)).generate()
        assert again == instance


@pytest.mark.parametrize(
    "schema", [{"$ref": "https://example.com/schema"}, {"$ref": "#/nowhere"}, {"items": [1]}]
)
def test_unfollowable_schemas_raise(schema):
    with pytest.raises(SchemaError):
        InstanceGenerator(schema, Topic.of("x"), Dice(0)).generate()


def test_recursive_pydantic_schema_stays_small_and_valid():
    from pydantic import BaseModel, Field

    class Shot(BaseModel):
        title: str = Field(max_length=40)
        prompt: str = Field(min_length=10, max_length=300)
        negative: str | None = None
        weight: float = Field(ge=0, le=2)

    class Plan(BaseModel):
        theme: str
        shots: list[Shot] = Field(min_length=2, max_length=8)
        children: list[Plan] = []

    schema = Plan.model_json_schema()
    instance = InstanceGenerator(schema, Topic.of("a cozy autumn cafe"), Dice(1)).generate()
    jsonschema.validate(instance, schema)
    plan = Plan.model_validate(instance)
    assert len(str(instance)) < 10_000
    prompts = [shot.prompt for shot in plan.shots]
    assert len(set(prompts)) == len(prompts)
    assert all("cozy autumn cafe" in prompt.lower() for prompt in prompts)
