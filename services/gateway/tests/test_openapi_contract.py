"""The gateway's routes are exactly `contracts/openapi.yaml`: same operations, parameters,
bodies, statuses and schemas, as FastAPI derives them at run time."""

from __future__ import annotations

from typing import Any

import pytest

from imagetron_gateway.bootstrap import contract_openapi, create_app
from imagetron_gateway.settings import GatewaySettings

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and not node["$ref"].startswith("#/components/schemas/"):
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _schema_name(schema: dict[str, Any] | None) -> str | None:
    """The referenced model's name; None for inline or absent schemas. An optional body
    (`anyOf: [ref, null]`) names its model."""
    if not schema:
        return None
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    variants = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return _schema_name(variants[0]) if len(variants) == 1 else None


def _content(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, str | None]:
    node = _resolve(doc, node)
    return {ct: _schema_name(media.get("schema")) for ct, media in node.get("content", {}).items()}


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    ops = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = {}
            for p in op.get("parameters", []):
                p = _resolve(doc, p)
                params[(p["in"], p["name"].lower() if p["in"] == "header" else p["name"])] = p.get(
                    "required", False
                )
            body = op.get("requestBody")
            ops[(method, path)] = {
                "operationId": op.get("operationId"),
                "parameters": params,
                "requestBody": None
                if body is None
                else (_resolve(doc, body).get("required", False), _content(doc, body)),
                "responses": {
                    str(status): _content(doc, response)
                    for status, response in op["responses"].items()
                },
            }
    return ops


@pytest.fixture(scope="module")
def runtime() -> dict[str, Any]:
    return create_app(GatewaySettings()).openapi()


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return contract_openapi()


def test_same_operations(runtime, contract):
    assert sorted(operations(runtime)) == sorted(operations(contract))


@pytest.mark.parametrize("key", sorted(operations(contract_openapi())), ids=" ".join)
def test_operation_matches_contract(runtime, contract, key):
    assert operations(runtime)[key] == operations(contract)[key]


def test_component_schemas_match_where_both_define_them(runtime, contract):
    """Models the runtime derives from the generated package keep the contract's fields."""
    for name, schema in runtime["components"]["schemas"].items():
        if name in contract["components"]["schemas"]:
            expected = contract["components"]["schemas"][name]
            assert set(schema.get("properties", {})) == set(expected.get("properties", {})), name
            assert set(schema.get("required", [])) == set(expected.get("required", [])), name
