"""The gateway's routes are exactly `contracts/openapi.yaml`: same operations, parameters,
bodies, statuses and schemas, as FastAPI derives them at run time; and what the creating
operations answer when their services say no is problem+json the contract lists."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from imagetron_contracts import streams
from imagetron_gateway.bootstrap import contract_openapi, create_app
from imagetron_gateway.settings import GatewaySettings
from imagetron_platform.errors import (
    BadGateway,
    Conflict,
    Gone,
    InvalidRequest,
    NotFound,
    ServiceTimeout,
    ServiceUnavailable,
)

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


# --- over HTTP: what a creating operation answers is in the contract ---------------------

_TASK, _PROMPT, _CHAT, _IMAGE = (str(uuid.uuid4()) for _ in range(4))
#: operationId → its request, and the service call that answers it (imagine asks the prompts
#: service first: it is given the prompt).
CREATING = {
    "createPrompt": ("/api/v1/prompts", {"text": "a pear"}, streams.RPC_PROMPTS_CREATE),
    "generatePrompts": (
        "/api/v1/prompts/generate",
        {"subject": "pears", "chat_id": _CHAT},
        streams.RPC_PROMPTS_GENERATE,
    ),
    "startChat": ("/api/v1/chats", {"brief": "pears for stock"}, streams.RPC_PROMPTS_CHATS_START),
    "continueChat": (
        f"/api/v1/chats/{_CHAT}/messages",
        {"text": "greener"},
        streams.RPC_PROMPTS_CHATS_CONTINUE,
    ),
    "imaginePrompt": (f"/api/v1/prompts/{_PROMPT}/imagine", None, streams.RPC_IMAGES_IMAGINE),
    "rerollTask": (f"/api/v1/tasks/{_TASK}/reroll", None, streams.RPC_IMAGES_TASKS_REROLL),
    "varyTask": (
        f"/api/v1/tasks/{_TASK}/variation",
        {"index": 1},
        streams.RPC_IMAGES_TASKS_VARIATION,
    ),
    "upscaleTask": (
        f"/api/v1/tasks/{_TASK}/upscale",
        {"index": 1},
        streams.RPC_IMAGES_TASKS_UPSCALE,
    ),
    "createPublications": (
        "/api/v1/publications",
        {"image_ids": [_IMAGE]},
        streams.RPC_PUBLISHER_PUBLICATIONS_CREATE,
    ),
}
#: What the services answer each of them with besides their result (read from their
#: handlers), a request sent again with its Idempotency-Key included: a chat started by a
#: request and deleted since is a 404, a prompt created and deleted since a 410.
SERVICE_ANSWERS = {
    "createPrompt": [Gone, InvalidRequest, ServiceUnavailable, ServiceTimeout],
    "generatePrompts": [NotFound, InvalidRequest, BadGateway, ServiceUnavailable, ServiceTimeout],
    "startChat": [NotFound, InvalidRequest, BadGateway, ServiceUnavailable, ServiceTimeout],
    "continueChat": [NotFound, InvalidRequest, BadGateway, ServiceUnavailable, ServiceTimeout],
    "imaginePrompt": [NotFound, Conflict, InvalidRequest, ServiceUnavailable, ServiceTimeout],
    "rerollTask": [NotFound, Conflict, InvalidRequest, ServiceUnavailable, ServiceTimeout],
    "varyTask": [NotFound, Conflict, InvalidRequest, ServiceUnavailable, ServiceTimeout],
    "upscaleTask": [NotFound, Conflict, InvalidRequest, ServiceUnavailable, ServiceTimeout],
    "createPublications": [NotFound, InvalidRequest, ServiceUnavailable, ServiceTimeout],
}


@pytest.mark.parametrize(
    ("operation", "problem"),
    [(op, problem) for op, problems in SERVICE_ANSWERS.items() for problem in problems],
    ids=lambda v: v if isinstance(v, str) else str(v.status),
)
async def test_a_creating_operations_answers_are_problems_the_contract_lists(
    gateway, make_prompt, operation, problem
) -> None:
    ada = gateway.people["ada"]
    path, body, subject = CREATING[operation]
    gateway.services.answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = make_prompt(ada.id)
    gateway.services.answers[subject] = problem("The service says no.")
    headers = {**gateway.auth("ada"), "Idempotency-Key": f"key-{uuid.uuid4()}"}

    response = await gateway.client.post(path, json=body, headers=headers)

    assert response.status_code == problem.status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == problem.status
    served = (await gateway.client.get("/openapi.json")).json()
    documented = _operation(served, operation)["responses"]
    assert str(problem.status) in documented, f"{operation} does not list {problem.status}"
    listed = _resolve(served, documented[str(problem.status)])
    assert set(listed["content"]) == {"application/problem+json"}


def _operation(doc: dict[str, Any], operation_id: str) -> dict[str, Any]:
    return next(
        op
        for item in doc["paths"].values()
        for method, op in item.items()
        if method in METHODS and op.get("operationId") == operation_id
    )


# --- over HTTP: a forwarded operation's 502 is in the contract ----------------------------


class _Malformed(dict[str, Any]):
    """Every service's reply is malformed: `RpcClient` raises BadGateway for it."""

    def __missing__(self, subject: str) -> BadGateway:
        return BadGateway(f"The service answered {subject} with a reply its contract forbids.")


#: The bodies of the forwarded operations that take one (the creating ones' from CREATING).
BODIES: dict[str, Any] = {
    **{op: body for op, (_, body, _) in CREATING.items()},
    "updatePrompt": {"text": "a riper pear"},
    "setPromptStatus": {"status": "archived"},
    "setAgencyAccount": {"username": "ada", "password": "secret"},
    "updatePublication": {"enlarge": 2},
    "setPublicationPortalStatus": {"status": "accepted"},
}
#: Path and query parameters by name; any other path parameter is an id.
PARAMETERS = {"agency": "adobe_stock", "image_id": _IMAGE}


def _forwarded_operations() -> list[Any]:
    """(operationId, method, path) of every operation the gateway forwards to a service:
    those that can answer 504, which only `RpcClient` raises."""
    doc = contract_openapi()
    return [
        pytest.param(op["operationId"], method, path, id=op["operationId"])
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS and "504" in op["responses"]
    ]


@pytest.mark.parametrize(("operation", "method", "path"), _forwarded_operations())
async def test_a_forwarded_operations_malformed_reply_is_a_502_the_contract_lists(
    gateway, operation, method, path
) -> None:
    gateway.services.answers = _Malformed()
    url = path.format_map({name: PARAMETERS.get(name, _TASK) for name in _path_names(path)})
    query = {"image_id": _IMAGE} if operation == "getReadiness" else None
    headers = {**gateway.auth("ada"), "Idempotency-Key": f"key-{uuid.uuid4()}"}

    response = await gateway.client.request(
        method, url, params=query, json=BODIES.get(operation), headers=headers
    )

    assert gateway.services.calls, f"{operation} was not forwarded: {response.text}"
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"
    served = (await gateway.client.get("/openapi.json")).json()
    documented = _operation(served, operation)["responses"]
    assert "502" in documented, f"{operation} does not list 502"
    listed = _resolve(served, documented["502"])
    assert set(listed["content"]) == {"application/problem+json"}


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
