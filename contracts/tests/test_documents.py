"""The contract documents are valid, consistent with each other, and the generated package
is what `contracts/generate.py` would produce now."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

CONTRACTS = Path(__file__).resolve().parents[1]


def _yaml(name: str) -> dict:
    return yaml.safe_load((CONTRACTS / name).read_text())


def test_openapi_document_is_valid_openapi_3_1():
    validate(_yaml("openapi.yaml"), base_uri=(CONTRACTS / "openapi.yaml").as_uri())


@pytest.mark.parametrize(
    "path", sorted((CONTRACTS / "schemas").glob("*.yaml")), ids=lambda p: p.name
)
def test_each_schema_file_is_valid_json_schema(path):
    Draft202012Validator.check_schema(yaml.safe_load(path.read_text()))


def test_schema_names_are_unique_across_files():
    # The bundler maps `file#/$defs/Name` to `#/components/schemas/Name`.
    seen: dict[str, str] = {}
    for path in sorted((CONTRACTS / "schemas").glob("*.yaml")):
        for name in yaml.safe_load(path.read_text()).get("$defs", {}):
            assert name not in seen, f"{name} defined in {seen.get(name)} and {path.name}"
            seen[name] = path.name


def test_asyncapi_document_is_structurally_sound():
    doc = _yaml("asyncapi.yaml")
    assert doc["asyncapi"].startswith("3.")
    channels, operations = doc["channels"], doc["operations"]
    messages = doc["components"]["messages"]
    for op_id, op in operations.items():
        assert op["action"] in {"send", "receive"}, op_id
        channel_id = op["channel"]["$ref"].removeprefix("#/channels/")
        assert channel_id in channels, f"{op_id} names unknown channel {channel_id}"
        for ref in op.get("messages", []):
            _, _, cid, _, mname = ref["$ref"].split("/")
            assert mname in channels[cid]["messages"], f"{op_id}: {mname} not on {cid}"
        assert op.get("tags"), f"{op_id} says no owning service"
    for channel in channels.values():
        for ref in channel["messages"].values():
            assert ref["$ref"].removeprefix("#/components/messages/") in messages
    streams = {s["name"]: s for s in doc["x-imagetron-streams"]}
    assert set(streams) == {"WEBHOOKS", "WORK", "EVENTS"}
    for channel in channels.values():
        address = channel.get("address")
        # Request/reply and announcements marked as core NATS need no stream.
        if address and not address.startswith("rpc.") and not channel.get("x-imagetron-core"):
            prefix = address.split(".")[0] + ".>"
            assert any(prefix in s["subjects"] for s in streams.values()), address


def test_generated_package_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(CONTRACTS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_bundled_openapi_has_no_external_refs():
    text = resources.files("imagetron_contracts.documents").joinpath("openapi.json").read_text()
    assert ".yaml#" not in text, "an external $ref survived bundling"
    validate(json.loads(text))


def test_generated_enums_have_names_from_the_contract():
    """Every enum is a titled `$defs` entry, so code imports `TaskEventType`, not `Type1`."""
    import enum
    import importlib
    import pkgutil

    import imagetron_contracts.models as models

    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"imagetron_contracts.models.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, enum.Enum):
                assert not re.fullmatch(r"(Type|Status|Kind|Field)\d*", name), (info.name, name)
