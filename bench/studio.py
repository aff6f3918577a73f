"""How fast the studio opens, and how its gallery holds up with 1,000 images.

Against a running Imagetron (`make up`) with Debian's chromium:

    uv run python bench/studio.py --url http://127.0.0.1:8080 --key itk_… [--images 1000]

Prints: time until the first screen is interactive (cold cache and warm), the requests it
took, and, with `--images N`, the gallery of N images (stored through the API first when the
user has fewer): time to the first thumbnails, frames dropped while scrolling to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
from common import Figure
from playwright.async_api import BrowserContext, Page, async_playwright

from imagetron.testing import CHROMIUM_ARGS, chromium_or_reason

NAME = "studio"

# Counts frames slower than 50 ms (3 missed at 60 Hz) while the page scrolls to the bottom.
SCROLL = """async (wanted) => {
  const main = document.querySelector('main');
  let last = performance.now(), slow = 0, frames = 0, running = true;
  const tick = (now) => {
    frames++; if (now - last > 50) slow++; last = now;
    if (running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const started = performance.now();
  let idle = 0;
  // Scroll like a hand would, 600 px a frame; at the bottom wait for the next page to load;
  // stop at the end of `wanted` tiles (or after two minutes).
  const count = () => document.querySelectorAll('.tile').length;
  while ((count() < wanted || idle < 30) && performance.now() - started < 120000) {
    const atEnd = main.scrollTop + main.clientHeight >= main.scrollHeight - 2;
    if (atEnd) idle++; else idle = 0;
    main.scrollBy(0, 600);
    await new Promise((r) => setTimeout(r, 16));
  }
  running = false;
  return {frames, slow, seconds: (performance.now() - started) / 1000,
          tiles: document.querySelectorAll('.tile').length};
}"""


async def count_images(api: httpx.AsyncClient, stored_only: bool = False) -> int:
    count, cursor = 0, None
    while True:
        params = {"limit": 200, "cursor": cursor, "is_persisted": "true" if stored_only else None}
        page = (
            await api.get("/api/v1/images", params={k: v for k, v in params.items() if v})
        ).json()
        count += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return count


async def ensure_images(url: str, key: str, wanted: int) -> None:
    """Render grids (five images each) until the user has `wanted` stored images."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
        have = await count_images(api)
        grids = max(0, (wanted - have + 4) // 5)
        print(f"{have} images present; rendering {grids} more grids …")
        prompt = (await api.post("/api/v1/prompts", json={"text": "bench: a pear"})).json()
        for _ in range(grids):
            while True:
                answer = await api.post(f"/api/v1/prompts/{prompt['id']}/imagine", json={})
                if answer.status_code != 429:
                    answer.raise_for_status()
                    break
                await asyncio.sleep(int(answer.headers.get("retry-after", "1")))
        deadline = time.monotonic() + 1800
        while (stored := await count_images(api, stored_only=True)) < wanted:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {stored} images stored after 30 minutes")
            await asyncio.sleep(5)
        print(f"{stored} images stored")


@contextlib.asynccontextmanager
async def signed_in(url: str, key: str) -> AsyncIterator[tuple[BrowserContext, Page]]:
    """Chromium with the studio open and signed in with `key`."""
    chromium, reason = chromium_or_reason()
    if chromium is None:
        raise SystemExit(reason)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            await page.goto(url + "/")
            await page.get_by_label("API key").fill(key)
            await page.get_by_role("button", name="Sign in").click()
            # Generous: in `make test` this runs beside the rest of the suite on two cores
            # (a clean CI run once waited past playwright's default 30 s).
            await page.locator("[data-live=live]").wait_for(timeout=90_000)
            yield context, page
        finally:
            await browser.close()


async def first_screens(
    context: BrowserContext, page: Page, url: str
) -> list[tuple[str, float, int]]:
    """(cache, seconds until the first screen is interactive, requests it took): cold, then
    warm twice."""
    screens = []
    for label in ("cold", "warm", "warm"):
        if label == "cold":
            cdp = await context.new_cdp_session(page)
            await cdp.send("Network.clearBrowserCache")
        requests: list[str] = []

        def record(request: object, into: list[str] = requests) -> None:
            into.append(str(request))

        page.on("request", record)
        started = time.perf_counter()
        await page.goto(url + "/#/create")
        await page.reload()
        await page.get_by_role("button", name="Imagine").wait_for()
        screens.append((label, time.perf_counter() - started, len(requests)))
        page.remove_listener("request", record)
    return screens


async def figures(url: str, key: str) -> list[Figure]:
    """The first screen, cold and warm, as figures for `make bench`."""
    async with signed_in(url, key) as (context, page):
        screens = await first_screens(context, page, url)
    cold = screens[0]
    warm = min(screens[1:], key=lambda s: s[1])
    return [
        Figure(NAME, "first screen interactive, cold cache", cold[1] * 1000, "ms",
               note=f"{cold[2]} requests"),
        Figure(NAME, "first screen interactive, warm cache", warm[1] * 1000, "ms",
               note=f"{warm[2]} requests"),
    ]  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--key", required=True)
    parser.add_argument("--images", type=int, default=0)
    options = parser.parse_args()
    if options.images:
        await ensure_images(options.url, options.key, options.images)
    async with signed_in(options.url, options.key) as (context, page):
        for label, seconds, requests in await first_screens(context, page, options.url):
            print(f"first screen interactive ({label} cache): {seconds * 1000:.0f} ms, "
                  f"{requests} requests")  # fmt: skip
        if options.images:
            started = time.perf_counter()
            await page.goto(options.url + "/#/gallery")
            await page.locator(".tile img").first.wait_for()
            print(
                f"gallery: first thumbnails after {(time.perf_counter() - started) * 1000:.0f} ms"
            )
            result = await page.evaluate(SCROLL, options.images)
            print(f"gallery: scrolled {result['tiles']} tiles in {result['seconds']:.1f} s, "
                  f"{result['frames']} frames, {result['slow']} slower than 50 ms")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
