"""A real Chromium (Debian's, through Playwright) on the studio of the shared embedded stack.

Every page opened here fails its test on a JavaScript error, a refused Content-Security-
Policy or an unexpected failed request; `studio.check(page, name)` takes the screenshot of a
screen (in `artifacts/screenshots/`), refuses a blank or broken one, and runs axe-core."""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from imagetron.stack import EmbeddedStack
from imagetron.testing import CHROMIUM_ARGS, chromium_or_reason

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
#: Tags of the WCAG 2.1 A and AA rules (contrast included) and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


class BrokenScreen(AssertionError):
    pass


@dataclass
class PageWatch:
    """What went wrong on a page: script errors, CSP refusals, failed requests."""

    problems: list[str] = field(default_factory=list)
    #: Answers that are part of the design: (status, a part of the URL). Before signing in
    #: there is no session; before it is set up there is no agency account.
    expected: list[tuple[int, str]] = field(
        default_factory=lambda: [
            (401, "/api/v1/session"),
            (404, "/api/v1/publications/accounts/"),
        ]
    )
    requests: list[str] = field(default_factory=list)
    #: The event stream's requests, answers and failures, with their times: what a stream
    #: that never went live did (`Studio.live`).
    stream_log: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("request", self._request)
        page.on("requestfailed", lambda r: self._stream(r.url, f"failed: {r.failure}"))

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        self._stream(request.url, "asked")

    def _stream(self, url: str, what: str) -> None:
        if "/api/v1/events" in url and "/token" not in url:
            self.stream_log.append(f"{time.strftime('%H:%M:%S')} {what}: {url}")

    def _console(self, message: Any) -> None:
        text = message.text
        if message.type == "error" and "Failed to load resource" not in text:
            self.problems.append(f"console error: {text}")
        if "Content Security Policy" in text:
            self.problems.append(f"CSP refused something: {text}")

    def _response(self, response: Any) -> None:
        self._stream(response.url, f"answered {response.status}")
        if response.status >= 400 and not any(
            response.status == status and part in response.url for status, part in self.expected
        ):
            self.problems.append(f"{response.status} from {response.url}")

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@dataclass
class Studio:
    """The studio of the test stack, seen by a browser."""

    url: str
    admin_key: str
    browser: Any
    watches: list[PageWatch] = field(default_factory=list)

    async def new_user(self, name: str) -> str:
        async with httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}
        ) as admin:
            created = await admin.post("/api/v1/users", json={"name": name})
            assert created.status_code == 201, created.text
            key: str = created.json()["api_key"]
            return key

    async def page(self, viewport: dict[str, int] = DESKTOP, state: Any = None) -> Any:
        context = await self.browser.new_context(viewport=viewport, storage_state=state)
        page = await context.new_page()
        watch = PageWatch()
        watch.attach(page)
        page.watch = watch
        self.watches.append(watch)
        return page

    async def sign_in(self, page: Any, key: str) -> None:
        await page.goto(self.url + "/")
        await page.get_by_label("API key").fill(key)
        await page.get_by_role("button", name="Sign in").click()
        await page.locator(".shell").wait_for()
        await self.live(page)

    async def live(self, page: Any, timeout: float = 30_000) -> None:
        """Wait until the page's event stream is live; if it is not in time, say what the
        page shows and what the stream's requests got."""
        try:
            await page.locator("[data-live=live]").wait_for(timeout=timeout)
        except PlaywrightTimeoutError as exc:
            state = await page.evaluate(
                "document.querySelector('[data-live]')?.getAttribute('data-live')"
            )
            log = "\n".join(page.watch.stream_log) or "(no request to /api/v1/events)"
            raise AssertionError(f"the event stream is not live but {state!r}:\n{log}") from exc

    async def check(self, page: Any, name: str, *, axe: bool = True) -> Path:
        """Screenshot the screen, refuse it when blank or broken, and run axe-core."""
        await page.wait_for_load_state("networkidle")
        await page.evaluate("document.fonts.ready")
        size = page.viewport_size
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"
        png = await page.screenshot(path=str(path))
        await assert_not_broken(page, png)
        if axe:
            await assert_accessible(page, name)
        page.watch.assert_clean()
        return path


async def assert_not_broken(page: Any, png: bytes) -> None:
    """A screen shows something (not one flat colour, readable text in its main region) and
    no error the test did not ask for."""
    with Image.open(io.BytesIO(png)) as shot:
        spread = max(hi - lo for lo, hi in ImageStat.Stat(shot.convert("RGB")).extrema)
    if spread < 40:
        raise BrokenScreen("the screen is blank (one flat colour)")
    text = await page.evaluate(
        "(document.querySelector('main') || document.body).innerText.trim().length"
    )
    if text < 20:
        raise BrokenScreen(f"the screen has almost no text ({text} characters)")
    boot = await page.locator(".boot").count()
    if boot:
        raise BrokenScreen("the studio never started (still on its boot screen)")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    if overflow > 1:
        raise BrokenScreen(f"the screen is wider than the window by {overflow} px")


async def assert_accessible(page: Any, name: str) -> None:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated by the DevTools protocol: the page's policy does not apply to it.
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})",
        AXE_TAGS,
    )
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"axe on {name}:\n" + "\n".join(serious)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path, reason = chromium_or_reason()
    if path is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    return path


@pytest.fixture(scope="session")
async def studio(stack: EmbeddedStack, chromium_path: str) -> AsyncIterator[Studio]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield Studio(stack.gateway_url, stack.admin_api_key, browser)
        finally:
            await browser.close()
