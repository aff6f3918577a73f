"""Each service's FastStream subscribers are exactly the `receive` operations that
`contracts/asyncapi.yaml` gives that service, with the same payload schemas."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.specification import AsyncAPI

ASYNCAPI = yaml.safe_load((Path(__file__).parents[2] / "contracts" / "asyncapi.yaml").read_text())
SERVICES = ["gateway", "prompts", "images", "notifier", "publisher"]


def _contract_receives(service: str) -> dict[str, set[str]]:
    """address → payload schema names, for the service's FastStream-served operations."""
    out: dict[str, set[str]] = {}
    for op in ASYNCAPI["operations"].values():
        if op["action"] != "receive" or "x-imagetron-consumer" in op:
            continue
        if service not in {t["name"] for t in op["tags"]}:
            continue
        channel = ASYNCAPI["channels"][op["channel"]["$ref"].removeprefix("#/channels/")]
        names = {
            ASYNCAPI["components"]["messages"][ref["$ref"].removeprefix("#/components/messages/")][
                "payload"
            ]["$ref"].rsplit("/", 1)[-1]
            for ref in channel["messages"].values()
        }
        out.setdefault(channel["address"], set()).update(names)
    return out


def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("%7B", "{").replace("%7D", "}")]
    return node


def _faststream_receives(service: str) -> dict[str, set[str]]:
    bootstrap = importlib.import_module(f"imagetron_{service}.bootstrap")
    settings_module = importlib.import_module(f"imagetron_{service}.settings")
    settings_class = next(
        v
        for k, v in vars(settings_module).items()
        if k.endswith("Settings") and v.__module__ == settings_module.__name__
    )
    broker = bootstrap.build_broker(settings_class())
    doc = AsyncAPI(broker, schema_version="3.0.0").to_specification().to_jsonable()
    out: dict[str, set[str]] = {}
    for op in doc.get("operations", {}).values():
        if op["action"] != "receive":
            continue
        channel = _resolve(doc, op["channel"]["$ref"])
        names = set()
        for ref in op["messages"]:
            message = _resolve(doc, _resolve(doc, ref["$ref"])["$ref"])
            payload = message["payload"]
            variants = payload.get("oneOf", [payload])
            names |= {v["$ref"].rsplit("/", 1)[-1] for v in variants if "$ref" in v}
        out.setdefault(channel["address"], set()).update(names)
    return out


@pytest.mark.parametrize("service", SERVICES)
def test_subscribers_match_the_contract(service):
    assert _faststream_receives(service) == _contract_receives(service)
