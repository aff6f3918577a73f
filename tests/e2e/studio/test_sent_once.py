"""Sent once, however often it is sent: the studio's creating POSTs carry an
Idempotency-Key of their own and are sent again with it while they have no answer.

The answers are cut in the browser (Playwright's routing), the way a killed replica or a
slow moment cuts them: the first imagine reaches Imagetron and creates its task, and its
answer is lost (504); the studio sends it again with the same key, gets the first answer,
and the artist has one task, not two."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.async_api import expect

pytestmark = [pytest.mark.e2e]

CONTRACT = Path(__file__).resolve().parents[3] / "contracts" / "openapi.yaml"
IMAGINE = re.compile(r".*/api/v1/prompts/[^/]+/imagine$")


async def _create_page(studio: Any, name: str) -> tuple[Any, str]:
    key = await studio.new_user(name)
    page = await studio.page()
    await studio.sign_in(page, key)
    await page.goto(studio.url + "/#/create")
    return page, key


async def _tasks(studio: Any, key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=studio.url, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        items: list[dict[str, Any]] = (await api.get("/api/v1/tasks")).json()["items"]
        return items


async def test_an_imagine_whose_answer_was_lost_is_sent_again_with_its_key(studio) -> None:
    page, key = await _create_page(studio, "sent-once")
    page.watch.expected.append((504, "/imagine"))
    attempts: list[dict[str, str]] = []

    async def lose_the_first_answer(route: Any) -> None:
        attempts.append(await route.request.all_headers())
        if len(attempts) == 1:
            await route.fetch()  # Imagetron does it...
            await route.fulfill(  # ...and its answer is lost
                status=504,
                content_type="application/problem+json",
                body=json.dumps({"title": "Gateway Timeout", "status": 504, "detail": "Slow."}),
            )
        else:
            await route.continue_()

    await page.route(IMAGINE, lose_the_first_answer)
    await page.get_by_label("Describe the image").fill("a quince on slate")
    await page.get_by_role("button", name="Imagine").click()
    # Answered at last (the studio says so once its imagine has an answer).
    await expect(page.get_by_text("Imagining…")).to_be_visible(timeout=15_000)
    await expect(page.locator(".task-card")).to_have_count(1)
    assert len(attempts) == 2
    keys = {headers.get("idempotency-key") for headers in attempts}
    assert len(keys) == 1
    assert None not in keys
    assert len(await _tasks(studio, key)) == 1  # one task, not one per attempt
    await expect(page.get_by_text("No answer from Imagetron")).to_have_count(0)
    page.watch.assert_clean()
    await page.context.close()


async def test_after_three_attempts_without_an_answer_the_studio_says_so(studio) -> None:
    page, key = await _create_page(studio, "no-answer")
    page.watch.expected.append((503, "/imagine"))
    attempts: list[str | None] = []

    async def unavailable(route: Any) -> None:
        attempts.append((await route.request.all_headers()).get("idempotency-key"))
        await route.fulfill(
            status=503,
            headers={"Retry-After": "0"},
            content_type="application/problem+json",
            body=json.dumps({"title": "Service Unavailable", "status": 503, "detail": "Down."}),
        )

    await page.route(IMAGINE, unavailable)
    await page.get_by_label("Describe the image").fill("a fig on linen")
    await page.get_by_role("button", name="Imagine").click()
    await expect(page.get_by_text("No answer from Imagetron")).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("3 times in a row")).to_be_visible()
    assert len(attempts) == 3
    assert len(set(attempts)) == 1
    assert attempts[0] is not None
    assert await _tasks(studio, key) == []
    await studio.check(page, "16-create-no-answer", axe=True)
    await page.context.close()


async def test_the_posts_sent_with_a_key_are_the_contracts(studio) -> None:
    """The studio's list of POSTs that take an Idempotency-Key is the OpenAPI document's."""
    document = yaml.safe_load(CONTRACT.read_text())
    expected = {}
    for path, item in document["paths"].items():
        operation = item.get("post")
        if operation is None or not path.startswith("/api/"):
            continue
        keyed = any("IdempotencyKey" in json.dumps(p) for p in operation.get("parameters", []))
        expected[re.sub(r"\{[^}]+\}", "0b7c4e1e-8f0a-4f43-9a5e-2d1f7a9c3b11", path)] = keyed
    page = await studio.page()
    await page.goto(studio.url + "/")
    found = await page.evaluate(
        """async (paths) => {
          const api = await import("/studio/js/api.js");
          return Object.fromEntries(paths.map((p) => [p, api.takesIdempotencyKey("POST", p)]));
        }""",
        list(expected),
    )
    assert found == expected
    assert sum(expected.values()) == 9
    await page.context.close()
