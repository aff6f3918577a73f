"""Publications at the REST edge: the caller's id goes with every command, fixed paths are
not taken for ids, the password never comes back, the CSV is served as CSV, and the
publisher's problems keep their status."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from imagetron_contracts import streams
from imagetron_contracts.models.publications import (
    BatchQuery,
    CreatePublicationsCommand,
    PortalStatus,
    PortalStatusCommand,
    PublicationQuery,
    ReadinessQuery,
    SetAgencyAccountCommand,
)
from imagetron_platform.errors import Conflict, NotFound


def _publication(owner_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": str(uuid.uuid4()), "owner_id": str(owner_id), "batch_id": str(uuid.uuid4()),
        "agency": "adobe_stock", "status": "ready", "enlarge": 1, "findings": [],
        "attempts": 0, "created_at": now, "updated_at": now, "remote_name": "x.jpg",
        "source": {
            "image_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4()),
            "prompt_id": str(uuid.uuid4()), "kind": "upscale", "width": 2048, "height": 2048,
            "bytes": 1000, "content_type": "image/png",
        },
        "metadata": {
            "title": "A pear", "keywords": ["pear"], "category": 7, "file_type": "illustration",
            "generative_ai": True, "fictional_people_and_property": False,
        },
        **overrides,
    }  # fmt: skip


def _batch(owner_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "owner_id": str(owner_id), "agency": "adobe_stock",
        "size": 1, "counts": {"ready": 1}, "created_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip


async def test_create_forwards_the_batch_with_the_callers_id(gateway):
    ada = gateway.people["ada"]
    images = [uuid.uuid4(), uuid.uuid4()]
    missing = str(images[1])
    gateway.services.answers[streams.RPC_PUBLISHER_PUBLICATIONS_CREATE] = {
        "batch": _batch(ada.id),
        "items": [_publication(ada.id)],
        "errors": [{"image_id": missing, "status": 404, "detail": "no such image"}],
    }
    response = await gateway.client.post(
        "/api/v1/publications",
        json={"image_ids": [str(i) for i in images], "publish_when_ready": True},
        headers=gateway.auth("ada"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["errors"][0]["image_id"] == missing
    [(subject, cmd)] = gateway.services.calls
    assert subject == streams.RPC_PUBLISHER_PUBLICATIONS_CREATE
    assert isinstance(cmd, CreatePublicationsCommand)
    assert (cmd.owner_id, cmd.image_ids, cmd.publish_when_ready) == (ada.id, images, True)
    assert (cmd.agency, cmd.enlarge, cmd.suggest_metadata) == ("adobe_stock", 1, True)


async def test_create_refuses_an_empty_or_oversized_batch_before_forwarding(gateway):
    for ids in ([], [str(uuid.uuid4()) for _ in range(501)]):
        response = await gateway.client.post(
            "/api/v1/publications", json={"image_ids": ids}, headers=gateway.auth("ada")
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert gateway.services.calls == []


async def test_fixed_paths_are_not_taken_for_publication_ids(gateway):
    ada = gateway.people["ada"]
    image_id = uuid.uuid4()
    gateway.services.answers[streams.RPC_PUBLISHER_READINESS] = {
        "image_id": str(image_id), "agency": "adobe_stock", "ready": False,
        "megapixels": 1.0, "findings": [],
    }  # fmt: skip
    gateway.services.answers[streams.RPC_PUBLISHER_BATCHES_LIST] = {"items": []}
    readiness = await gateway.client.get(
        "/api/v1/publications/readiness",
        params={"image_id": str(image_id), "enlarge": 2},
        headers=gateway.auth("ada"),
    )
    assert readiness.status_code == 200, readiness.text
    batches = await gateway.client.get("/api/v1/publications/batches", headers=gateway.auth("ada"))
    assert batches.status_code == 200, batches.text
    (_, query), _ = gateway.services.calls
    assert query == ReadinessQuery(
        owner_id=ada.id, image_id=image_id, agency="adobe_stock", enlarge=2
    )


async def test_the_password_goes_to_the_publisher_and_never_comes_back(gateway):
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_PUBLISHER_ACCOUNTS_SET] = {
        "agency": "adobe_stock", "username": "ada@example.com", "host": "sftp.example",
        "port": 22, "has_password": True, "updated_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    response = await gateway.client.put(
        "/api/v1/publications/accounts/adobe_stock",
        json={"username": "ada@example.com", "password": "hunter2-secret"},
        headers=gateway.auth("ada"),
    )
    assert response.status_code == 200, response.text
    assert "hunter2-secret" not in response.text
    [(_, cmd)] = gateway.services.calls
    assert cmd == SetAgencyAccountCommand(
        owner_id=ada.id, agency="adobe_stock", username="ada@example.com", password="hunter2-secret"
    )
    unknown = await gateway.client.put(
        "/api/v1/publications/accounts/shutterstock",
        json={"username": "a", "password": "b"},
        headers=gateway.auth("ada"),
    )
    assert unknown.status_code == 422


async def test_batch_csv_is_served_as_a_csv_download(gateway):
    ada = gateway.people["ada"]
    batch_id = uuid.uuid4()
    content = 'Filename,Title,Keywords,Category,Releases\nx.jpg,A pear,"pear,fruit",7,\n'
    gateway.services.answers[streams.RPC_PUBLISHER_BATCHES_CSV] = {
        "filename": "imagetron-batch.csv", "content": content, "rows": 1,
    }  # fmt: skip
    response = await gateway.client.get(
        f"/api/v1/publications/batches/{batch_id}/csv", headers=gateway.auth("ada")
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="imagetron-batch.csv"' in response.headers["content-disposition"]
    assert response.text == content
    [(_, query)] = gateway.services.calls
    assert query == BatchQuery(owner_id=ada.id, batch_id=batch_id)


async def test_portal_status_and_actions_forward_and_keep_problems(gateway):
    ada = gateway.people["ada"]
    publication_id = uuid.uuid4()
    gateway.services.answers[streams.RPC_PUBLISHER_PUBLICATIONS_PORTAL_STATUS] = _publication(
        ada.id, status="rejected", rejection_reason="similar content"
    )
    response = await gateway.client.post(
        f"/api/v1/publications/{publication_id}/portal",
        json={"status": "rejected", "reason": "similar content"},
        headers=gateway.auth("ada"),
    )
    assert response.status_code == 200, response.text
    assert gateway.services.calls[-1][1] == PortalStatusCommand(
        owner_id=ada.id,
        publication_id=publication_id,
        status=PortalStatus.rejected,
        reason="similar content",
    )
    gateway.services.answers[streams.RPC_PUBLISHER_PUBLICATIONS_PUBLISH] = Conflict("blocked")
    conflict = await gateway.client.post(
        f"/api/v1/publications/{publication_id}/publish", headers=gateway.auth("ada")
    )
    assert conflict.status_code == 409
    assert gateway.services.calls[-1][1] == PublicationQuery(
        owner_id=ada.id, publication_id=publication_id
    )
    gateway.services.answers[streams.RPC_PUBLISHER_PUBLICATIONS_GET] = NotFound("not yours")
    missing = await gateway.client.get(
        f"/api/v1/publications/{publication_id}", headers=gateway.auth("ada")
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_publications_need_an_api_key(gateway):
    response = await gateway.client.get("/api/v1/publications")
    assert response.status_code == 401
    assert gateway.services.calls == []
