"""Fault knobs of the task lifecycle and of webhook delivery, global and per prompt."""

from __future__ import annotations

import asyncio
import time

import pytest


def statuses(deliveries):
    return [(d.json["data"]["status"], d.json["data"]["output"]["progress"]) for d in deliveries]


async def test_fault_admin_endpoints(sandbox):
    url = f"{sandbox.base_url}/sandbox/faults"
    defaults = (await sandbox.http.get(url)).json()
    assert defaults["generation_fail"] is False
    assert defaults["download_error"] == "none"
    put = await sandbox.http.put(url, json={"webhook_duplicates": 2, "chat_refusal": True})
    assert put.status_code == 200
    assert put.json() == {**defaults, "webhook_duplicates": 2, "chat_refusal": True}
    patch = await sandbox.http.patch(url, json={"download_error": "http_500"})
    assert patch.json() == {**put.json(), "download_error": "http_500"}
    assert (await sandbox.http.get(url)).json() == patch.json()
    for bad in ({"no_such_knob": True}, {"webhook_duplicates": -1}, {"download_error": "x"}):
        assert (await sandbox.http.put(url, json=bad)).status_code == 422
        assert (await sandbox.http.patch(url, json=bad)).status_code == 422
    assert (await sandbox.http.delete(url)).json() == defaults
    assert (await sandbox.http.get(url)).json() == defaults


@pytest.mark.parametrize("how", ["global", "prompt"])
async def test_duplicate_webhooks(sandbox, receiver, how):
    prompt = "twins"
    if how == "global":
        await sandbox.set_faults(webhook_duplicates=2)
    else:
        prompt += " --sandbox-duplicate-webhooks=2"
    created = await sandbox.imagine(prompt)
    await receiver.wait_terminal(created["task_id"])
    # The terminal callback's copies may still be on their way.
    deliveries = await receiver.settled(created["task_id"], 15)
    for index in range(0, 15, 3):
        assert deliveries[index].body == deliveries[index + 1].body == deliveries[index + 2].body


async def test_out_of_order_webhooks_deliver_completion_first(sandbox, receiver):
    created = await sandbox.imagine("backwards --sandbox-out-of-order")
    await receiver.wait_terminal(created["task_id"])
    deliveries = await receiver.settled(created["task_id"], 5)
    assert statuses(deliveries) == [
        ("completed", 100),
        ("pending", 0),
        ("processing", 0),
        ("processing", 30),
        ("processing", 70),
    ]


async def test_delayed_webhooks(sandbox, receiver):
    await sandbox.set_faults(webhook_delay_ms=60)
    started = time.monotonic()
    created = await sandbox.imagine("patience")
    first = await receiver.wait_terminal(created["task_id"])
    assert first[0].at - started >= 0.06
    task = await sandbox.task(created["task_id"])
    assert task["status"] == "completed"  # the task itself was not slowed down
    assert statuses(await receiver.settled(created["task_id"], 5))[-1] == ("completed", 100)


async def test_dropped_webhooks_are_never_delivered(sandbox, receiver):
    created = await sandbox.imagine("silence --sandbox-no-webhooks")
    done = await sandbox.finished(created["task_id"])
    assert done["status"] == "completed"
    await asyncio.sleep(0.1)
    assert receiver.for_task(created["task_id"]) == []


async def test_failing_receiver_is_retried_with_backoff(sandbox, receiver):
    receiver.fail_next = 2
    created = await sandbox.imagine("persistence")
    deliveries = await receiver.wait_terminal(created["task_id"])
    assert statuses(deliveries)[0] == ("pending", 0)
    assert len(await receiver.settled(created["task_id"], 5)) == 5


async def test_unreachable_receiver_does_not_stall_the_task(sandbox):
    sandbox_url = sandbox.webhook_url
    sandbox.webhook_url = "http://127.0.0.1:9/nowhere"
    try:
        created = await sandbox.imagine("nobody listens")
    finally:
        sandbox.webhook_url = sandbox_url
    assert (await sandbox.finished(created["task_id"]))["status"] == "completed"


@pytest.mark.parametrize("how", ["global", "prompt"])
async def test_failed_generation(sandbox, receiver, how):
    prompt = "doomed"
    if how == "global":
        await sandbox.set_faults(generation_fail=True)
    else:
        prompt += " --sandbox-fail"
    created = await sandbox.imagine(prompt)
    deliveries = await receiver.wait_terminal(created["task_id"])
    failed = deliveries[-1].json["data"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] != 0
    assert failed["error"]["message"]
    assert failed["error"]["raw_message"]
    assert failed["output"]["image_url"] == ""
    assert failed["output"]["image_urls"] is None
    assert failed["meta"]["ended_at"] != "0001-01-01T00:00:00Z"
    assert (await sandbox.task(created["task_id"]))["status"] == "failed"


async def test_stuck_generation_never_finishes(sandbox, receiver):
    created = await sandbox.imagine("limbo --sandbox-stuck")
    await receiver.settled(created["task_id"], 4)
    await asyncio.sleep(0.1)
    task = await sandbox.task(created["task_id"])
    assert task["status"] == "processing"
    assert task["output"]["progress"] == 70
    assert not any(
        d.json["data"]["status"] == "completed" for d in receiver.for_task(created["task_id"])
    )


async def test_queue_delay_keeps_the_task_pending(sandbox):
    created = await sandbox.imagine("queued --sandbox-queue-delay=400")
    await asyncio.sleep(0.1)
    assert (await sandbox.task(created["task_id"]))["status"] == "pending"
    assert (await sandbox.finished(created["task_id"]))["status"] == "completed"
