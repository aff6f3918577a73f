"""The studio with the keyboard alone: sign in, skip to the content, move between screens,
add a prompt, filter with the arrow keys, open an image and close it again, always with a
visible focus."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from playwright.async_api import expect

pytestmark = [pytest.mark.e2e]

FOCUS_VISIBLE = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return false;
  const style = getComputedStyle(el);
  return (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2)
    || style.boxShadow !== "none";
}"""


async def tab_to(page, selector: str, *, backwards: bool = False, limit: int = 60) -> None:
    """Press Tab until `selector` has the focus; every stop on the way shows its focus."""
    for _ in range(limit):
        await page.keyboard.press("Shift+Tab" if backwards else "Tab")
        if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
            assert await page.evaluate(FOCUS_VISIBLE), f"no visible focus on {selector}"
            return
        focused = await page.evaluate("document.activeElement.tagName")
        if focused != "MAIN":
            assert await page.evaluate(FOCUS_VISIBLE), f"no visible focus on a {focused}"
    raise AssertionError(f"Tab never reached {selector}")


async def _stored_grid(url: str, key: str) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        prompt = (await api.post("/api/v1/prompts", json={"text": "a teapot, studio light"})).json()
        task = (await api.post(f"/api/v1/prompts/{prompt['id']}/imagine", json={})).json()
        for _ in range(300):
            page = (await api.get("/api/v1/images", params={"task_id": task["id"]})).json()
            if len([i for i in page["items"] if i["is_persisted"]]) == 5:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("the grid was not stored")


async def test_the_studio_works_with_the_keyboard_alone(studio):
    key = await studio.new_user("keyboard")
    await _stored_grid(studio.url, key)
    page = await studio.page()
    await page.goto(studio.url + "/")

    # The key field has the focus; Enter signs in.
    await expect(page.get_by_label("API key")).to_be_focused()
    await page.keyboard.type(key)
    await page.keyboard.press("Enter")
    await studio.live(page)

    # On a fresh load the first stop is the skip link, visible when focused; it leads to the
    # content.
    await page.goto(studio.url + "/#/prompts")
    await page.reload()
    await studio.live(page)
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    assert (await skip.bounding_box())["y"] >= 0
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()

    # A new prompt without the mouse.
    await expect(page.get_by_role("heading", name="Prompts")).to_be_visible()
    await tab_to(page, ".screen-head button")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
    await page.keyboard.type("a brass compass on an old map, warm light")
    await tab_to(page, ".new-prompt button[type=submit]")
    await page.keyboard.press("Enter")
    await expect(page.locator(".prompt-card", has_text="brass compass")).to_be_visible()

    # The status filter is one stop; the arrow keys choose within it.
    await tab_to(page, "[role=radiogroup][aria-label=Status] [role=radio]")
    await page.keyboard.press("ArrowRight")
    new = page.get_by_role("radio", name="New")
    await expect(new).to_be_focused()
    await expect(new).to_have_attribute("aria-checked", "true")
    await expect(page.locator(".prompt-card")).to_have_count(2)

    # The gallery: an image opens at full size and Escape closes it, focus back on its tile.
    await tab_to(page, "nav a[href='#/gallery']", backwards=True)
    await page.keyboard.press("Enter")
    await expect(page.locator(".tile")).to_have_count(5)
    await tab_to(page, ".tile button")
    tile = await page.evaluate("document.activeElement.getAttribute('aria-label')")
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    assert await page.evaluate("document.activeElement.closest('dialog') !== null")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert await page.evaluate("document.activeElement.getAttribute('aria-label')") == tile
    page.watch.assert_clean()
    await page.context.close()
