"""No secret travels back in what we store: providers echo our credentials in their
callbacks (GoAPI its `webhook_config`, midjourney-proxy its `notifyHook`), and none of them
may reach the WEBHOOKS stream. Read the stream itself after real callbacks went through."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from imagetron.stack import EmbeddedStack
from imagetron_platform.webhook_tokens import webhook_token

pytestmark = [pytest.mark.e2e]

RECORDED = Path(__file__).parents[2] / "services/images/tests/fixtures/providers"


async def stored_callbacks(stack: EmbeddedStack, task_ids: set[str]) -> list[bytes]:
    """Every message of the WEBHOOKS stream about `task_ids`, as stored (read as the
    stack's NATS admin: no service may read the stream like this)."""
    nc = await nats.connect(**stack.nats_connect_options())
    try:
        sub = await nc.jetstream().pull_subscribe(
            "webhooks.>",
            stream="WEBHOOKS",
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=10.0,
            ),
        )
        found: list[bytes] = []
        while True:
            try:
                batch = await sub.fetch(200, timeout=0.5)
            except TimeoutError:
                return found
            found += [m.data for m in batch if json.loads(m.data)["task_id"] in task_ids]
    finally:
        await nc.close()


async def test_the_webhooks_stream_holds_no_secret_or_task_token(stack, clients):
    artist, _ = clients
    secrets = stack.secrets
    # A real task: the sandbox echoes our webhook secret and callback URL in every webhook.
    prompt = (await artist.post("/api/v1/prompts", json={"text": "a plum on a saucer"})).json()
    task = (await artist.post(f"/api/v1/prompts/{prompt['id']}/imagine")).json()

    for _ in range(300):
        status = (await artist.get(f"/api/v1/tasks/{task['id']}")).json()["status"]
        if status == "completed":
            break
        await asyncio.sleep(0.1)
    assert status == "completed"

    # A midjourney-proxy fork's callback echoing a callback URL given out before (token and
    # shared secret in it), sent as the proxy would.
    proxy_task = uuid.uuid4()
    proxy_token = webhook_token(secrets.webhook_token_key, "midjourney_proxy", proxy_task)
    body = (
        (RECORDED / "midjourney_proxy" / "fork-webhook-success-imagine.json")
        .read_text()
        .replace("ECHOED-PER-TASK-TOKEN", proxy_token)
        .replace("ECHOED-SHARED-SECRET", secrets.webhook_secret)
    )
    accepted = await artist.post(
        f"/webhooks/midjourney_proxy/{proxy_task}?token={proxy_token}",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert accepted.status_code == 200, accepted.text

    stored = await stored_callbacks(stack, {task["id"], str(proxy_task)})
    goapi_token = webhook_token(secrets.webhook_token_key, "goapi", uuid.UUID(task["id"]))
    assert len(stored) >= 3  # pending, progress..., completed; and the proxy's
    for raw in stored:
        text = raw.decode()
        assert secrets.webhook_secret not in text
        assert goapi_token not in text
        assert proxy_token not in text
    bodies = [json.loads(raw)["body"] for raw in stored]
    echoed = [b["data"]["config"]["webhook_config"] for b in bodies if "data" in b]
    assert echoed
    assert all(c == {"endpoint": "[redacted]", "secret": "[redacted]"} for c in echoed)
    assert [b["properties"]["notifyHook"] for b in bodies if "properties" in b] == ["[redacted]"]
