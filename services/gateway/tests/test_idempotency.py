"""Idempotency-Key on creating requests: the same key and body replay the first answer
without doing the request again; another body is a 422; a key whose first request is still
being answered is a 409; a failed request gives its key back; keys are per user and expire.
The repository's rules run against the in-memory fake and the real identity schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagetron_contracts import streams
from imagetron_gateway.app.idempotency import IdempotentRequests
from imagetron_gateway.app.ports import Answer
from imagetron_gateway.domain.identity import User, hash_api_key
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Conflict, Gone, NotFound, ServiceTimeout
from imagetron_platform.pruning import PRUNE_BATCH

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LOCK = timedelta(minutes=5)


# --- the repository: the fake and PostgreSQL keep the same rules ----------------------


async def _claim(uow: Callable[[], Any], user: uuid.UUID, key: str, fp: str, now: datetime) -> bool:
    async with uow() as unit:
        claimed = await unit.idempotency.claim(user, key, fp, now, now + DAY, now + LOCK)
        await unit.commit()
    return bool(claimed)


async def test_a_key_is_claimed_once_answered_and_then_read(identity_store) -> None:
    uow, user = identity_store
    assert await _claim(uow, user, "k1", "body-a", NOW)
    assert not await _claim(uow, user, "k1", "body-a", NOW)
    async with uow() as unit:
        record = await unit.idempotency.get(user, "k1", NOW)
    assert (record.fingerprint, record.answer) == ("body-a", None)  # being answered
    answer = Answer(201, {"content-type": "application/json"}, b'{"id": 1}')
    async with uow() as unit:
        await unit.idempotency.complete(user, "k1", "body-a", answer)
        await unit.idempotency.release(user, "k1", "body-a")  # an answered key stays
        await unit.commit()
    async with uow() as unit:
        assert (await unit.idempotency.get(user, "k1", NOW)).answer == answer


async def test_a_released_key_can_be_claimed_again(identity_store) -> None:
    uow, user = identity_store
    assert await _claim(uow, user, "k2", "body-a", NOW)
    async with uow() as unit:
        await unit.idempotency.release(user, "k2", "another-body")  # not its request
        await unit.commit()
    assert not await _claim(uow, user, "k2", "body-a", NOW)
    async with uow() as unit:
        await unit.idempotency.release(user, "k2", "body-a")
        await unit.commit()
    assert await _claim(uow, user, "k2", "body-b", NOW)


async def test_an_abandoned_key_is_taken_over_by_its_own_request_only(identity_store) -> None:
    uow, user = identity_store
    assert await _claim(uow, user, "k3", "body-a", NOW)
    later = NOW + LOCK + timedelta(seconds=1)  # its replica died while answering
    assert not await _claim(uow, user, "k3", "body-b", later)
    assert await _claim(uow, user, "k3", "body-a", later)


async def test_keys_expire_and_are_removed(identity_store) -> None:
    uow, user = identity_store
    assert await _claim(uow, user, "k4", "body-a", NOW)
    async with uow() as unit:
        await unit.idempotency.complete(user, "k4", "body-a", Answer(201, {}, b"{}"))
        await unit.commit()
    after = NOW + DAY
    async with uow() as unit:
        assert await unit.idempotency.get(user, "k4", after) is None
    assert await _claim(uow, user, "k4", "body-b", after)  # a new request, a day later
    async with uow() as unit:
        removed = await unit.idempotency.remove_expired(after + DAY, 1000)
        await unit.commit()
    assert removed >= 1
    async with uow() as unit:
        assert await unit.idempotency.get(user, "k4", after) is None


async def test_one_round_removes_every_expired_key_however_many_batches(identity_store) -> None:
    uow, user = identity_store
    now = utcnow()
    expired = [f"old-{n}" for n in range(2 * PRUNE_BATCH + 1)]  # more than two batches
    kept = [f"new-{n}" for n in range(3)]
    async with uow() as unit:
        for key in expired:  # claimed two days ago, for a day
            assert await unit.idempotency.claim(user, key, "fp", now - 2 * DAY, now - DAY, now)
        for key in kept:
            assert await unit.idempotency.claim(user, key, "fp", now, now + DAY, now + LOCK)
        await unit.commit()

    removed = await IdempotentRequests(uow, ttl=DAY, lock=LOCK).remove_expired()

    assert removed >= len(expired)
    async with uow() as unit:  # read as of their claim: a row still there would be found
        left = [k for k in expired if await unit.idempotency.get(user, k, now - 2 * DAY)]
        alive = [k for k in kept if await unit.idempotency.get(user, k, now)]
    assert (len(left), alive) == (0, kept)


# --- over HTTP ---------------------------------------------------------------------------


def _key(value: str = "") -> dict[str, str]:
    return {"Idempotency-Key": value or f"key-{uuid.uuid4()}"}


async def test_the_same_key_and_body_replay_the_first_answer(gateway, make_prompt) -> None:
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_PROMPTS_CREATE] = make_prompt(ada.id, "a pear")
    headers = {**gateway.auth("ada"), **_key()}
    first = await gateway.client.post("/api/v1/prompts", json={"text": "a pear"}, headers=headers)
    assert first.status_code == 201
    gateway.services.answers[streams.RPC_PROMPTS_CREATE] = make_prompt(ada.id, "another")
    # Same JSON, other spacing and key order: the same request.
    again = await gateway.client.post(
        "/api/v1/prompts",
        content=b'{ "text" :  "a pear" }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["content-type"] == first.headers["content-type"]
    assert len(gateway.services.calls) == 1  # done once


async def test_another_body_with_the_same_key_is_a_422(gateway, make_prompt) -> None:
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_PROMPTS_CREATE] = make_prompt(ada.id, "a pear")
    headers = {**gateway.auth("ada"), **_key()}
    assert (
        await gateway.client.post("/api/v1/prompts", json={"text": "a pear"}, headers=headers)
    ).status_code == 201
    other = await gateway.client.post("/api/v1/prompts", json={"text": "a fig"}, headers=headers)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    # Nor may it be reused on another operation.
    url = f"/api/v1/prompts/{uuid.uuid4()}/imagine"
    assert (await gateway.client.post(url, headers=headers)).status_code == 422
    assert len(gateway.services.calls) == 1


async def test_a_key_whose_first_request_is_still_answered_is_a_409(gateway, make_prompt) -> None:
    ada = gateway.people["ada"]
    started, release = asyncio.Event(), asyncio.Event()
    answers = gateway.services

    class Slow:
        async def call(self, subject, request, result_type, *, timeout=None):
            started.set()
            await release.wait()
            return await answers.call(subject, request, result_type, timeout=timeout)

    answers.answers[streams.RPC_PROMPTS_CREATE] = make_prompt(ada.id, "a pear")
    gateway.state["context"] = replace(gateway.state["context"], rpc=Slow())
    headers = {**gateway.auth("ada"), **_key()}
    first = asyncio.create_task(
        gateway.client.post("/api/v1/prompts", json={"text": "a pear"}, headers=headers)
    )
    await asyncio.wait_for(started.wait(), 5)
    meanwhile = await gateway.client.post(
        "/api/v1/prompts", json={"text": "a pear"}, headers=headers
    )
    assert meanwhile.status_code == 409
    assert meanwhile.headers["retry-after"] == "1"
    release.set()
    assert (await first).status_code == 201
    replay = await gateway.client.post("/api/v1/prompts", json={"text": "a pear"}, headers=headers)
    assert replay.json() == (await first).json()


async def test_a_failed_request_gives_its_key_back(gateway) -> None:
    url = f"/api/v1/prompts/{uuid.uuid4()}/imagine"
    headers = {**gateway.auth("ada"), **_key()}
    gateway.services.answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = NotFound("No prompt.")
    gateway.services.answers[streams.RPC_IMAGES_TASKS_REQUESTED] = NotFound("No task.")
    assert (await gateway.client.post(url, headers=headers)).status_code == 404
    assert (await gateway.client.post(url, headers=headers)).status_code == 404
    prepared = [s for s, _ in gateway.services.calls if s == streams.RPC_PROMPTS_PREPARE_GENERATION]
    assert len(prepared) == 2  # asked again, not replayed


async def test_a_create_whose_prompt_was_deleted_since_is_a_410(gateway) -> None:
    """The prompts service answers a late retry of a finished create whose prompt was
    deleted since with 410 (it does not create it again): forwarded as it is."""
    gateway.services.answers[streams.RPC_PROMPTS_CREATE] = Gone("Prompt 1 was deleted since.")
    headers = {**gateway.auth("ada"), **_key()}
    response = await gateway.client.post("/api/v1/prompts", json={"text": "x"}, headers=headers)
    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Prompt 1 was deleted since."


async def test_another_users_key_is_their_own(gateway, make_prompt) -> None:
    ada = gateway.people["ada"]
    key = _key("shared-looking-key")
    gateway.services.answers[streams.RPC_PROMPTS_CREATE] = make_prompt(ada.id, "ada's pear")
    mine = await gateway.client.post(
        "/api/v1/prompts", json={"text": "a pear"}, headers={**gateway.auth("ada"), **key}
    )
    bob = User(id=uuid.uuid4(), name="bob", is_admin=False, created_at=datetime.now(UTC))
    await gateway.users.add(bob, hash_api_key("itk_bob-key"))
    gateway.keys["bob"] = "itk_bob-key"
    gateway.services.answers[streams.RPC_PROMPTS_CREATE] = make_prompt(bob.id, "bob's pear")
    theirs = await gateway.client.post(
        "/api/v1/prompts", json={"text": "a pear"}, headers={**gateway.auth("bob"), **key}
    )
    assert theirs.status_code == 201
    assert theirs.json()["owner_id"] == str(bob.id)
    assert theirs.json()["id"] != mine.json()["id"]
    assert len(gateway.services.calls) == 2


@pytest.mark.parametrize("value", ["", "a key with spaces", "\u00e9t\u00e9", "k" * 256])
async def test_a_malformed_key_is_a_422(gateway, value) -> None:
    headers = {**gateway.auth("ada"), "Idempotency-Key": value.encode()}
    response = await gateway.client.post("/api/v1/prompts", json={"text": "x"}, headers=headers)
    assert response.status_code == 422
    assert not gateway.services.calls


def _new_task(owner_id: uuid.UUID, command: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": str(uuid.uuid4()), "owner_id": str(owner_id), "prompt_id": str(uuid.uuid4()),
        "command": command, "status": "pending", "progress": 0, "provider": "goapi",
        "prompt_text": "a pear", "aspect_ratio": "1:1", "process_mode": "fast",
        "actions": ["cancel"], "created_at": now, "updated_at": now,
    }  # fmt: skip


GENERATIONS = pytest.mark.parametrize(
    ("command", "subject", "path", "body"),
    [
        ("imagine", streams.RPC_IMAGES_IMAGINE, "prompts/{id}/imagine", {"aspect_ratio": "3:2"}),
        ("reroll", streams.RPC_IMAGES_TASKS_REROLL, "tasks/{id}/reroll", None),
        ("upscale", streams.RPC_IMAGES_TASKS_UPSCALE, "tasks/{id}/upscale", {"index": 2}),
        ("variation", streams.RPC_IMAGES_TASKS_VARIATION, "tasks/{id}/variation", {"index": 3}),
    ],
)


def _request_ids(gateway: Any, subject: str) -> list[str | None]:
    return [getattr(r, "request_id", "-") for s, r in gateway.services.calls if s == subject]


@GENERATIONS
async def test_a_generation_whose_answer_was_lost_is_sent_again_as_the_same_request(
    gateway, make_prompt, command, subject, path, body
) -> None:
    """The images replica created the task, then died before answering (or answered too
    late): 504, and the key is given back. Sent again with its key, the request reaches the
    images service with the same request id, which names the task the first one created
    (`task_id_for`): no second task."""
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = make_prompt(ada.id, "a")
    url = "/api/v1/" + path.format(id=uuid.uuid4())
    headers = {**gateway.auth("ada"), **_key()}
    gateway.services.answers[subject] = ServiceTimeout(f"No answer on {subject} within 10 s.")
    assert (await gateway.client.post(url, json=body, headers=headers)).status_code == 504
    gateway.services.answers[subject] = _new_task(ada.id, command)
    assert (await gateway.client.post(url, json=body, headers=headers)).status_code == 202
    first, again = _request_ids(gateway, subject)
    assert first is not None
    assert again == first


@GENERATIONS
async def test_another_key_or_none_is_another_generation(
    gateway, make_prompt, command, subject, path, body
) -> None:
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = make_prompt(ada.id, "a")
    gateway.services.answers[subject] = _new_task(ada.id, command)
    url = "/api/v1/" + path.format(id=uuid.uuid4())
    for headers in ({**gateway.auth("ada"), **_key()}, gateway.auth("ada")):
        assert (await gateway.client.post(url, json=body, headers=headers)).status_code == 202
    with_key, without = _request_ids(gateway, subject)
    assert with_key is not None
    assert without is None


@pytest.mark.parametrize(
    "refusal",
    [Conflict("The prompt is archived; restore it first."), NotFound("No prompt.")],
    ids=["archived", "deleted"],
)
async def test_an_imagine_sent_again_answers_its_task_whatever_became_of_its_prompt(
    gateway, make_prompt, refusal
) -> None:
    """The first attempt created its task but its answer was lost (504); the prompt was
    archived (or deleted) before the retry. The retry answers the first attempt's task
    (asked of the images service by the same request id), not the prompt's refusal, and
    its generation is charged once."""
    ada = gateway.people["ada"]
    url = f"/api/v1/prompts/{uuid.uuid4()}/imagine"
    headers = {**gateway.auth("ada"), **_key()}
    answers = gateway.services.answers
    answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = make_prompt(ada.id, "a pear")
    answers[streams.RPC_IMAGES_IMAGINE] = ServiceTimeout("No answer within 10 s.")
    assert (await gateway.client.post(url, headers=headers)).status_code == 504
    answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = refusal
    answers[streams.RPC_IMAGES_TASKS_REQUESTED] = task = _new_task(ada.id, "imagine")

    again = await gateway.client.post(url, headers=headers)

    assert (again.status_code, again.json()["id"]) == (202, task["id"])
    assert _request_ids(gateway, streams.RPC_IMAGES_TASKS_REQUESTED) == _request_ids(
        gateway, streams.RPC_IMAGES_IMAGINE
    )
    assert len(_request_ids(gateway, streams.RPC_IMAGES_IMAGINE)) == 1  # not created again
    usage = await gateway.client.get("/api/v1/me/usage", headers=gateway.auth("ada"))
    assert usage.json()["generations"]["used"] == 1


async def test_a_first_imagine_of_an_archived_prompt_is_still_a_409(gateway) -> None:
    gateway.services.answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = Conflict("Archived.")
    gateway.services.answers[streams.RPC_IMAGES_TASKS_REQUESTED] = NotFound("No task.")
    url = f"/api/v1/prompts/{uuid.uuid4()}/imagine"
    response = await gateway.client.post(url, headers={**gateway.auth("ada"), **_key()})
    assert response.status_code == 409
    assert response.json()["detail"] == "Archived."
    assert not _request_ids(gateway, streams.RPC_IMAGES_IMAGINE)
    usage = await gateway.client.get("/api/v1/me/usage", headers=gateway.auth("ada"))
    assert usage.json()["generations"]["used"] == 0


CREATES = pytest.mark.parametrize(
    ("subject", "path", "body"),
    [
        (streams.RPC_PROMPTS_CREATE, "prompts", {"text": "a pear"}),
        (streams.RPC_PROMPTS_GENERATE, "prompts/generate", {"subject": "pears", "count": 2}),
        (streams.RPC_PROMPTS_CHATS_START, "chats", {"brief": "pears"}),
        (streams.RPC_PROMPTS_CHATS_CONTINUE, "chats/{id}/messages", {"text": "greener"}),
        (streams.RPC_PUBLISHER_PUBLICATIONS_CREATE, "publications", {"image_ids": ["{id}"]}),
    ],
)


def _create_request(path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    some = str(uuid.uuid4())
    filled = {k: [some] if v == ["{id}"] else v for k, v in body.items()}
    return "/api/v1/" + path.format(id=some), filled


@CREATES
async def test_a_create_whose_answer_was_lost_is_sent_again_as_the_same_request(
    gateway, subject, path, body
) -> None:
    """The prompts or publisher service created the prompt, chat, exchange or batch, then
    its answer came too late (504) and the key was given back: sent again with its key, the
    request reaches the service with the same request id, which names what the first one
    created (`imagetron_platform.request_ids`)."""
    url, body = _create_request(path, body)
    headers = {**gateway.auth("ada"), **_key()}
    gateway.services.answers[subject] = ServiceTimeout(f"No answer on {subject} within 10 s.")
    for _ in range(2):
        assert (await gateway.client.post(url, json=body, headers=headers)).status_code == 504
    first, again = _request_ids(gateway, subject)
    assert first is not None
    assert again == first


@CREATES
async def test_another_key_or_none_is_another_create(gateway, subject, path, body) -> None:
    url, body = _create_request(path, body)
    gateway.services.answers[subject] = ServiceTimeout(f"No answer on {subject} within 10 s.")
    for headers in (_key(), _key(), {}):
        headers = {**gateway.auth("ada"), **headers}
        assert (await gateway.client.post(url, json=body, headers=headers)).status_code == 504
    one, other, without = _request_ids(gateway, subject)
    assert None not in (one, other)
    assert one != other
    assert without is None
