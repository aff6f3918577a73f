"""Each service's FastStream subscribers are exactly the `receive` operations that
`contracts/asyncapi.yaml` gives that service, with the same payload schemas."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.specification import AsyncAPI

from imagetron_contracts.streams import PARTICIPANTS, DurableConsumer

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


def _broker(service: str) -> Any:
    bootstrap = importlib.import_module(f"imagetron_{service}.bootstrap")
    settings_module = importlib.import_module(f"imagetron_{service}.settings")
    settings_class = next(
        v
        for k, v in vars(settings_module).items()
        if k.endswith("Settings") and v.__module__ == settings_module.__name__
    )
    return bootstrap.build_broker(settings_class())


def _faststream_receives(service: str) -> dict[str, set[str]]:
    broker = _broker(service)
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


@pytest.mark.parametrize("service", SERVICES)
def test_durable_consumers_are_the_contracts(service):
    """Stream, durable name and filter of every JetStream consumer are those the contract
    gives the service: its NATS user may use those and no others (nats_access)."""
    contract = next((p for p in PARTICIPANTS if p.name == service), None)
    expected = set() if contract is None else set(contract.consumers)
    actual = {
        DurableConsumer(
            s.extra_options["stream"], s.extra_options["durable"], s.subject.broker_address
        )
        for s in _broker(service).subscribers
        if getattr(s, "extra_options", {}).get("durable")
    }
    assert actual == expected


@pytest.mark.parametrize("service", SERVICES)
def test_every_pull_consumer_fetches_one_message_per_request(service):
    """A batched fetch can hold a lone message until its request expires
    (`imagetron_platform.messaging.one_message_pulls`); concurrency is `max_workers`."""
    batches = {
        s.subject.broker_address: s.pull_sub.batch_size
        for s in _broker(service).subscribers
        if getattr(s, "pull_sub", None) is not None
    }
    assert batches == dict.fromkeys(batches, 1)
