"""A real browser's EventSource against the notifier: it receives events, and when the
server drops it, it reconnects by itself with Last-Event-ID and misses nothing."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import nats
import pytest
from pydantic import SecretStr

from imagetron.servers import free_port
from imagetron.testing import CHROMIUM_ARGS, chromium_or_reason, serving
from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_notifier.bootstrap import create_app
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform.events_tokens import issue_events_token
from imagetron_platform.nats_connection import provision_streams

pytestmark = pytest.mark.integration
SECRET = "browser-test-secret"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path, reason = chromium_or_reason()
    if path is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    return path


async def _publish(js, owner: uuid.UUID, n: int, start: int) -> list[int]:
    seqs = []
    for i in range(start, start + n):
        body = {
            "id": str(uuid.uuid4()),
            "type": "task.progress",
            "owner_id": str(owner),
            "occurred_at": datetime.now(UTC).isoformat(),
            "n": i,
        }
        ack = await js.publish(
            f"events.images.{owner}.task.progress",
            json.dumps(body).encode(),
            stream=EVENTS_STREAM.name,
        )
        seqs.append(ack.seq)
    return seqs


COLLECT = """
([token]) => {
  window.received = [];
  window.opened = 0;
  const source = new EventSource('/events?token=' + encodeURIComponent(token));
  source.onopen = () => { window.opened += 1; };
  source.addEventListener('task.progress', (e) => {
    window.received.push({id: Number(e.lastEventId), n: JSON.parse(e.data).n});
  });
}
"""


async def test_event_source_receives_and_resumes_after_the_server_drops_it(nats_url, chromium_path):
    from playwright.async_api import async_playwright

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision_streams(js)
    owner = uuid.uuid4()
    token, _ = issue_events_token(SECRET, owner, 300)
    settings = NotifierSettings(
        nats_url=nats_url, events_token_secret=SecretStr(SECRET), client_retry_ms=300
    )
    port = free_port()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            # The page is the test harness, not ours: its polling may eval despite our CSP.
            page = await browser.new_page(bypass_csp=True)
            async with serving(create_app(settings), port) as url:
                await page.goto(f"{url}/livez")  # any page of the notifier's origin
                await page.evaluate(COLLECT, [token])
                await page.wait_for_function("window.opened === 1", timeout=10_000)
                first = await _publish(js, owner, 3, 0)
                await page.wait_for_function("window.received.length === 3", timeout=10_000)
            # The server went away (a deploy, a crash); events keep happening meanwhile.
            missed = await _publish(js, owner, 2, 3)
            async with serving(create_app(settings), port):
                await page.wait_for_function("window.opened === 2", timeout=15_000)
                await page.wait_for_function("window.received.length === 5", timeout=10_000)
                later = await _publish(js, owner, 2, 5)
                await page.wait_for_function("window.received.length === 7", timeout=10_000)
                received = await page.evaluate("window.received")
        finally:
            await browser.close()
            await nc.close()
    assert [r["id"] for r in received] == first + missed + later
    assert [r["n"] for r in received] == list(range(7))
