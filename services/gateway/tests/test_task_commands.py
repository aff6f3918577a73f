"""Reroll, variation, upscale, cancel and image retry at the REST edge: the caller's id goes
with every command, the body is checked before anything is forwarded, and the images
service's problems keep their status."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from imagetron_contracts import streams
from imagetron_contracts.models.images import (
    ImageQuery,
    RerollCommand,
    TaskQuery,
    UpscaleCommand,
    VariationCommand,
    VariationStrength,
)
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound


def _task(owner_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": str(uuid.uuid4()), "owner_id": str(owner_id), "prompt_id": str(uuid.uuid4()),
        "command": "upscale", "status": "pending", "progress": 0, "provider": "goapi",
        "prompt_text": "a pear", "aspect_ratio": "1:1", "process_mode": "fast",
        "actions": ["cancel"], "created_at": now, "updated_at": now, **overrides,
    }  # fmt: skip


def _image(owner_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "owner_id": str(owner_id), "task_id": str(uuid.uuid4()),
        "prompt_id": str(uuid.uuid4()), "kind": "grid", "index": 0, "is_persisted": False,
        "attempts": 3, "error": "gone", "created_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip


async def test_upscale_forwards_the_index_with_the_callers_id(gateway):
    ada = gateway.people["ada"]
    origin = uuid.uuid4()
    gateway.services.answers[streams.RPC_IMAGES_TASKS_UPSCALE] = _task(
        ada.id, origin_task_id=str(origin), origin_index=2
    )
    response = await gateway.client.post(
        f"/api/v1/tasks/{origin}/upscale", json={"index": 2}, headers=gateway.auth("ada")
    )
    assert response.status_code == 202, response.text
    assert response.json()["origin_index"] == 2
    [(subject, cmd)] = gateway.services.calls
    assert subject == streams.RPC_IMAGES_TASKS_UPSCALE
    assert cmd == UpscaleCommand(owner_id=ada.id, task_id=origin, index=2)


async def test_variation_is_strong_unless_asked_otherwise(gateway):
    ada = gateway.people["ada"]
    origin = uuid.uuid4()
    gateway.services.answers[streams.RPC_IMAGES_TASKS_VARIATION] = _task(ada.id)
    for body, strength in (
        ({"index": 1}, VariationStrength.strong),
        ({"index": 4, "strength": "subtle"}, VariationStrength.subtle),
    ):
        response = await gateway.client.post(
            f"/api/v1/tasks/{origin}/variation", json=body, headers=gateway.auth("ada")
        )
        assert response.status_code == 202, response.text
        cmd = gateway.services.calls[-1][1]
        assert isinstance(cmd, VariationCommand)
        assert (cmd.owner_id, cmd.index, cmd.strength) == (ada.id, body["index"], strength)


@pytest.mark.parametrize(
    ("path", "status"),
    [("reroll", 202), ("cancel", 200)],
)
async def test_reroll_and_cancel_name_only_the_task(gateway, path, status):
    ada = gateway.people["ada"]
    task_id = uuid.uuid4()
    subject = {"reroll": streams.RPC_IMAGES_TASKS_REROLL, "cancel": streams.RPC_IMAGES_TASKS_CANCEL}
    gateway.services.answers[subject[path]] = _task(ada.id)
    response = await gateway.client.post(
        f"/api/v1/tasks/{task_id}/{path}", headers=gateway.auth("ada")
    )
    assert response.status_code == status, response.text
    named = {"reroll": RerollCommand, "cancel": TaskQuery}[path]
    assert gateway.services.calls == [(subject[path], named(owner_id=ada.id, task_id=task_id))]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("upscale", {"index": 0}),
        ("upscale", {"index": 5}),
        ("upscale", {}),
        ("variation", {"index": 2, "strength": "wild"}),
        ("variation", {"index": 2, "owner_id": str(uuid.uuid4())}),
    ],
)
async def test_a_bad_body_is_422_before_anything_is_forwarded(gateway, path, body):
    response = await gateway.client.post(
        f"/api/v1/tasks/{uuid.uuid4()}/{path}", json=body, headers=gateway.auth("ada")
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert gateway.services.calls == []


@pytest.mark.parametrize(
    ("problem", "status"),
    [
        (Conflict("Task x is a pending grid; only a completed grid can have a upscale."), 409),
        (InvalidRequest("The provider 'openai' cannot do upscale."), 422),
        (NotFound("There is no task x."), 404),
    ],
)
async def test_the_services_refusals_keep_their_status(gateway, problem, status):
    gateway.services.answers[streams.RPC_IMAGES_TASKS_UPSCALE] = problem
    response = await gateway.client.post(
        f"/api/v1/tasks/{uuid.uuid4()}/upscale", json={"index": 1}, headers=gateway.auth("ada")
    )
    assert response.status_code == status
    assert response.json()["detail"] == problem.detail


async def test_retry_image_forwards_the_callers_id(gateway):
    ada = gateway.people["ada"]
    image_id = uuid.uuid4()
    gateway.services.answers[streams.RPC_IMAGES_IMAGES_RETRY] = _image(ada.id)
    response = await gateway.client.post(
        f"/api/v1/images/{image_id}/retry", headers=gateway.auth("ada")
    )
    assert response.status_code == 202, response.text
    assert gateway.services.calls == [
        (streams.RPC_IMAGES_IMAGES_RETRY, ImageQuery(owner_id=ada.id, image_id=image_id))
    ]
    gateway.services.answers[streams.RPC_IMAGES_IMAGES_RETRY] = Conflict("already stored")
    again = await gateway.client.post(
        f"/api/v1/images/{image_id}/retry", headers=gateway.auth("ada")
    )
    assert again.status_code == 409
