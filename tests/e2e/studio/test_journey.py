"""The studio as an artist uses it, in a real Chromium on the embedded stack: from signing
in with a key, through a brief, subjects and prompts, to a grid, an upscale that is stored,
its publication uploaded to the (sandbox's) stock agency, the gallery, and signing out.
Every screen is photographed at 1280x800 and 390x844, must not be blank or broken, and
passes axe-core without serious violations."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import expect

pytestmark = [pytest.mark.e2e]

LOADED = "el => el.complete && el.naturalWidth > 0"
VISIBLE_IMAGES_DECODED = """() => Promise.all([...document.images]
  .filter((image) => image.getBoundingClientRect().top < innerHeight)
  .map((image) => image.decode().catch(() => null)))"""


async def test_from_a_brief_to_a_stored_upscale_and_every_screen_at_both_sizes(studio):
    key = await studio.new_user("journey")
    page = await studio.page()
    await page.goto(studio.url + "/")
    await studio.check(page, "01-sign-in")
    await studio.sign_in(page, key)
    shots = {}

    # 1. Assistant: a brief, the subjects it suggests, prompts with titles for one of them.
    await expect(page.get_by_role("heading", name="What are the images for?")).to_be_visible()
    await studio.check(page, "02-assistant-brief")
    await page.get_by_role("button", name="Autumn still lifes for stock").click()
    await page.get_by_role("button", name="Suggest subjects").click()
    subjects = page.locator(".subjects > li")
    await expect(subjects.first).to_be_visible(timeout=30_000)
    assert await subjects.count() >= 3
    shots["assistant-chat"] = page.url
    await page.locator(".subject").first.get_by_role("button", name="Write prompts").click()
    await page.get_by_role("button", name="Write 4 prompts").click()
    written = page.locator(".written .prompt-card")
    await expect(written).to_have_count(4, timeout=30_000)
    for card in await written.all():
        await expect(card.locator(".prompt-title")).not_to_have_text("Untitled")
    await studio.check(page, "03-assistant-chat")

    # 2. Prompts: approve one, and one written by hand shows its stock findings in place.
    first = written.first
    await first.get_by_role("button", name="Approve").click()
    await expect(first.locator(".badge", has_text="approved")).to_be_visible()
    nav = page.get_by_role("navigation", name="Studio")
    await nav.get_by_role("link", name="Prompts").click()
    await page.get_by_role("button", name="New prompt").click()
    await page.get_by_label("Prompt", exact=True).fill(
        "a lighthouse in the style of Greg Rutkowski"
    )
    await page.get_by_role("button", name="Add prompt").click()
    flagged = page.locator(".prompt-card", has_text="lighthouse")
    await expect(flagged.locator("mark.finding")).to_have_text("Greg Rutkowski")
    await expect(flagged.locator(".findings")).to_contain_text("Greg Rutkowski")
    await page.get_by_role("radio", name="Approved").click()
    await expect(page.locator(".prompt-card")).to_have_count(1)
    await page.get_by_role("radio", name="All").click()
    await expect(page.locator(".prompt-card")).to_have_count(5)
    await studio.check(page, "04-prompts")

    # 3. Create: render the approved prompt at 3:2; the live card ends with the stored grid.
    await page.locator(".prompt-card.status-approved").get_by_role("link", name="Create").click()
    await expect(page.locator(".chosen-prompt .prompt-text")).to_be_visible()
    await page.get_by_role("radio", name="3:2").click()
    await page.get_by_role("button", name="Imagine").click()
    card = page.locator(".task-card").first
    await expect(card).to_have_attribute("data-status", "completed", timeout=30_000)
    await expect(card.locator("img")).to_have_attribute("src", re.compile(r"/thumbnail$"))
    await page.wait_for_function(LOADED, arg=await card.locator("img").element_handle())
    await studio.check(page, "05-create")

    # 4. The grid: four versions; upscale the second; the follow-up is a live card below.
    await card.locator("a").click()
    versions = page.locator(".version-grid img")
    await expect(versions).to_have_count(4)
    for version in await versions.all():
        await page.wait_for_function(LOADED, arg=await version.element_handle())
    shots["grid"] = page.url
    await page.get_by_role("button", name="Upscale version 2").click()
    follow_up = page.locator(".lineage .task-card", has_text="Upscale 2")
    await expect(follow_up).to_have_attribute("data-status", "completed", timeout=30_000)
    await expect(follow_up.locator("img")).to_have_attribute("src", re.compile(r"/thumbnail$"))
    await studio.check(page, "06-task-grid")

    await follow_up.locator("a").click()
    upscale_id = page.url.rsplit("/", 1)[-1]
    await expect(page.locator(".upscale-view img")).to_be_visible()
    await expect(page.get_by_text("stored")).to_be_visible()
    shots["upscale"] = page.url
    await studio.check(page, "07-task-upscale")
    async with httpx.AsyncClient(
        base_url=studio.url, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        [upscale] = (await api.get("/api/v1/images", params={"task_id": upscale_id})).json()[
            "items"
        ]
    assert (upscale["kind"], upscale["index"], upscale["is_persisted"]) == ("upscale", 2, True)

    # 6. Publication: readiness, the agency account, metadata linted as it is edited,
    #    publish, and the status moving live to the upload at the (sandbox's) agency.
    await page.get_by_role("link", name="Publish").last.click()
    # 2048 px wide at 3:2 is under Adobe's 4 megapixels: the readiness says so, and how.
    await expect(page.get_by_text("below Adobe Stock's 4 MP")).to_be_visible(timeout=15_000)
    await page.get_by_role("radio", name="2\N{MULTIPLICATION SIGN}").click()
    await expect(page.get_by_text("Ready for Adobe Stock")).to_be_visible()
    await page.get_by_role("button", name="Set up").click()
    await page.get_by_label("SFTP user").fill(f"studio-{upscale['id'][:8]}")
    await page.get_by_label("SFTP password").fill("sandbox")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Uploads go to")).to_be_visible()
    await page.get_by_label("Upload as soon as its metadata is ready").uncheck()
    await studio.check(page, "10-publish-new")
    await page.get_by_role("button", name="Create publication").click()
    editor = page.locator(".publication-editor")
    await expect(editor).to_have_attribute("data-status", "ready", timeout=30_000)
    title = page.get_by_label("Title")
    await expect(title).not_to_have_value("")
    await title.fill("Pear, linen and morning light")
    await expect(page.get_by_text("titles cannot contain commas")).to_be_visible()
    await page.get_by_label("Add keywords").fill("still life,")
    await expect(page.locator(".keywords li", has_text="still life")).to_be_visible()
    await page.get_by_role("button", name="Save").click()
    await expect(editor).to_have_attribute("data-status", "blocked")
    await expect(page.locator(".findings")).to_contain_text("comma")
    await studio.check(page, "11-publish-editor")
    await title.fill("Pear on linen in morning light")
    await page.get_by_role("button", name="Save").click()
    await expect(editor).to_have_attribute("data-status", "ready")
    await page.get_by_role("button", name="Publish", exact=True).click()
    await expect(editor).to_have_attribute("data-status", "uploaded", timeout=60_000)
    await expect(page.locator(".stepper [aria-current=step]")).to_have_text("uploaded")
    shots["publication"] = page.url
    await page.get_by_role("link", name="Publications").click()
    row = page.locator(".publication-row").first
    await expect(row).to_have_attribute("data-status", "uploaded")
    await studio.check(page, "12-publish")

    # 5. Gallery: thumbnails only, until one is opened at full size.
    before = len(page.watch.requests)
    await nav.get_by_role("link", name="Gallery").click()
    tiles = page.locator(".tile img")
    await expect(tiles).to_have_count(6)
    for tile in await tiles.all():
        await page.wait_for_function(LOADED, arg=await tile.element_handle())
    for tile in await tiles.all():  # (most come from the browser's cache by now: immutable)
        assert (await tile.get_attribute("src")).endswith("/thumbnail")
    shown = page.watch.requests[before:]
    assert not [u for u in shown if u.endswith("/content")], "the grid loaded full-size images"
    await studio.check(page, "08-gallery")
    await page.locator(".tile button").first.click()
    viewer = page.get_by_role("dialog")
    await expect(viewer.locator("img")).to_have_attribute("src", re.compile(r"/content$"))
    await page.wait_for_function(LOADED, arg=await viewer.locator("img").element_handle())
    await studio.check(page, "09-gallery-viewer")
    await page.keyboard.press("Escape")
    await expect(viewer).to_be_hidden()

    # The same screens on a phone, signed in with the same session.
    state = await page.context.storage_state()
    phone = await studio.page({"width": 390, "height": 844}, state=state)
    for name, route in (
        ("02-assistant-brief", "/#/assistant"),
        ("03-assistant-chat", shots["assistant-chat"]),
        ("04-prompts", "/#/prompts"),
        ("05-create", "/#/create"),
        ("06-task-grid", shots["grid"]),
        ("07-task-upscale", shots["upscale"]),
        ("08-gallery", "/#/gallery"),
        ("11-publish-editor", shots["publication"]),
        ("12-publish", "/#/publish"),
    ):
        await phone.goto(route if route.startswith("http") else studio.url + route)
        await studio.live(phone)
        await phone.locator("main .state-loading").first.wait_for(state="detached")
        await phone.evaluate(VISIBLE_IMAGES_DECODED)
        await studio.check(phone, name)
    await phone.goto(studio.url + "/#/gallery")
    await phone.locator(".tile button").first.click()
    phone_viewer = phone.get_by_role("dialog").locator("img")
    await phone.wait_for_function(LOADED, arg=await phone_viewer.element_handle())
    await studio.check(phone, "09-gallery-viewer")
    await phone.context.close()

    # Signing out ends the session: the cookie no longer opens anything.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert (await page.request.get(studio.url + "/api/v1/me")).status == 401
    phone_signin = await studio.page({"width": 390, "height": 844})
    await phone_signin.goto(studio.url + "/")
    await studio.check(phone_signin, "01-sign-in")
    await phone_signin.context.close()
    await page.context.close()


async def test_a_blank_or_broken_screen_fails_the_check(studio):
    page = await studio.page()
    await page.goto(studio.url + "/")
    await page.get_by_label("API key").wait_for()
    await page.evaluate("document.body.replaceChildren()")
    with pytest.raises(AssertionError, match="blank"):
        await studio.check(page, "broken-blank", axe=False)
    await page.goto(studio.url + "/")
    await page.get_by_label("API key").wait_for()
    await page.evaluate("document.querySelector('main').style.width = '2000px'")
    with pytest.raises(AssertionError, match="wider than the window"):
        await studio.check(page, "broken-overflow", axe=False)
    await page.context.close()
