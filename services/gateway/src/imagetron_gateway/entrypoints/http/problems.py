"""The error responses an operation documents, all `application/problem+json`."""

from __future__ import annotations

from typing import Any

from imagetron_contracts.models.common import Problem

_DESCRIPTIONS = {
    401: "Missing or invalid credentials.",
    403: "The credentials are valid but may not do this.",
    404: "No such resource for this user.",
    409: "The resource's state does not allow this now.",
    410: "What this request created was deleted since; it is not created again.",
    413: "The request body is larger than this operation accepts.",
    415: "The request body is not JSON (`Content-Type: application/json`).",
    422: "The request is malformed or fails validation.",
    429: "Over a rate limit or a daily budget; retry after `Retry-After` seconds.",
    502: "An upstream (the service, or the language model it asked) gave no usable answer or "
    "failed unexpectedly; the detail names the cause.",
    503: "A dependency is unavailable; retry later.",
    504: "A service did not answer in time; retry later.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }


#: What every call forwarded to a service can answer: 502 when the service's reply is
#: malformed or the service failed unexpectedly (`RpcClient`), 503 when no service listens,
#: 504 when none answers in time.
FORWARDED = (401, 422, 502, 503, 504)


def forwarded(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problems of an operation forwarded to a service: `FORWARDED` and `statuses`."""
    return problems(*FORWARDED, *statuses)


def problem_media_type(openapi: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a response model under `application/json`; errors are sent as
    `application/problem+json`, so move their schema there."""
    for item in openapi.get("paths", {}).values():
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if int(status) >= 400 and "application/problem+json" in content:
                    schema = content.pop("application/json", {}).get("schema")
                    if schema is not None:
                        content["application/problem+json"] = {"schema": schema}
    return openapi


def guard_responses(openapi: dict[str, Any]) -> dict[str, Any]:
    """What the request guard (`guard.py`) answers before any route runs: 413 and 415 on
    operations that take a body, 429 on the API's operations."""
    for path, item in openapi.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            extra = [413, 415] if "requestBody" in operation else []
            extra += [429] if path.startswith("/api/v1/") else []
            for status in extra:
                responses.setdefault(
                    str(status),
                    {
                        "description": _DESCRIPTIONS[status],
                        "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
                    },
                )
            operation["responses"] = dict(sorted(responses.items()))
    return openapi


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
