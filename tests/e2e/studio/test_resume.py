"""The notifier dies in the middle of a generation; the page is not reloaded. The studio
says it is offline, reconnects by itself once the notifier is back, is replayed exactly the
events it missed, and the live card ends with the stored grid. And the studio says "Live"
however quickly the stream opens."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest
from playwright.async_api import expect

pytestmark = [pytest.mark.e2e]


async def test_live_cards_resume_after_the_notifier_is_killed_mid_generation(stack, studio):
    key = await studio.new_user("resume")
    page = await studio.page()
    # While the notifier is down the browser's reconnections are refused (503): expected.
    page.watch.expected.append((503, "/api/v1/events"))
    await studio.sign_in(page, key)
    await page.goto(studio.url + "/#/create")
    await page.evaluate("window.sameDocument = true")

    # Held in the provider's queue for a moment: the kill lands mid-generation.
    await page.get_by_label("Describe the image").fill(
        "a copper kettle on a stove --sandbox-queue-delay=1500"
    )
    await page.get_by_role("button", name="Imagine").click()
    card = page.locator(".task-card").first
    await expect(card).to_have_attribute("data-status", "submitted", timeout=15_000)
    task_id = await card.get_attribute("data-task-id")
    await studio.check(page, "13-create-live", axe=False)

    notifier = stack.apps["notifier"]
    os.kill(notifier.pid, signal.SIGKILL)
    await expect(page.locator("[data-live=offline]")).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("Live updates are paused")).to_be_visible()
    await studio.check(page, "14-create-offline", axe=False)

    # The generation finishes while nobody can tell the page.
    async with httpx.AsyncClient(
        base_url=studio.url, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        for _ in range(300):
            images = (await api.get("/api/v1/images", params={"task_id": task_id})).json()
            if len([i for i in images["items"] if i["is_persisted"]]) == 5:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the task did not finish while the notifier was down")
    assert await card.get_attribute("data-status") == "submitted"

    await asyncio.to_thread(notifier.start)
    await studio.live(page)
    await expect(page.get_by_text("Live updates are paused")).to_be_hidden()
    await expect(card).to_have_attribute("data-status", "completed", timeout=15_000)
    grid = await _grid(key, studio.url, task_id)
    await expect(card.locator("img")).to_have_attribute("src", f"/api/v1/images/{grid}/thumbnail")
    assert await page.evaluate("window.sameDocument") is True, "the page was reloaded"
    await studio.check(page, "15-create-resumed", axe=False)
    await page.context.close()


#: Preact runs a component's effects after the next frame, or after 35 ms at most: this makes
#: it 2 s, so the event stream opens between the render that shows its status and the effect
#: that follows it, as it can on a quick server. It also notes what the page said when the
#: stream opened.
LATE_EFFECTS = """
(() => {
  window.stretched = 0;
  const later = window.setTimeout.bind(window);
  window.setTimeout = (fn, ms, ...args) => {
    if (ms === 35) {
      window.stretched += 1;
      ms = 2000;
    }
    return later(fn, ms, ...args);
  };
  window.requestAnimationFrame = undefined;
  const Source = window.EventSource;
  window.EventSource = class extends Source {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => {
        window.statusAtOpen ??= document.querySelector("[data-live]")?.dataset.live ?? "none";
      });
    }
  };
})();
"""


async def test_the_studio_says_live_when_the_stream_opens_before_its_status_is_followed(studio):
    key = await studio.new_user("quick-stream")
    page = await studio.page()
    await page.add_init_script(LATE_EFFECTS)
    await page.goto(studio.url + "/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator(".shell").wait_for()
    await studio.live(page, timeout=10_000)
    # The case this is about did happen: the page showed "Connecting…" when the stream
    # opened, and its effects were late.
    assert await page.evaluate("window.statusAtOpen") == "connecting"
    assert await page.evaluate("window.stretched") > 0
    await page.context.close()


async def _grid(key: str, url: str, task_id: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        page = await api.get("/api/v1/images", params={"task_id": task_id, "kind": "grid"})
        return str(page.json()["items"][0]["id"])
