"""The GoAPI/PiAPI Midjourney task API: lifecycle, webhooks, images, follow-up tasks."""

from __future__ import annotations

import asyncio
import io
import json

from PIL import Image

API_KEY = "test-goapi-key"


def png_size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as image:
        image.verify()
    with Image.open(io.BytesIO(content)) as image:
        assert image.format == "PNG"
        return image.size


async def download(sandbox, url: str) -> bytes:
    response = await sandbox.http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return response.content


async def test_imagine_sends_progress_and_completed_webhooks(sandbox, receiver):
    created = await sandbox.imagine("a red fox in fresh snow", aspect_ratio="1:1")
    assert created["status"] == "pending"
    assert created["model"] == "midjourney"
    assert created["task_type"] == "imagine"
    assert created["input"]["prompt"] == "a red fox in fresh snow"
    assert created["meta"]["started_at"] == "0001-01-01T00:00:00Z"
    assert created["error"] == {"code": 0, "raw_message": "", "message": "", "detail": None}
    assert created["config"]["webhook_config"]["secret"] == sandbox.webhook_secret

    deliveries = await receiver.wait_terminal(created["task_id"])
    assert all(d.headers["x-webhook-secret"] == sandbox.webhook_secret for d in deliveries)
    assert all(d.headers["content-type"] == "application/json" for d in deliveries)
    statuses = [
        (d.json["data"]["status"], d.json["data"]["output"]["progress"]) for d in deliveries
    ]
    assert statuses == [
        ("pending", 0),
        ("processing", 0),
        ("processing", 30),
        ("processing", 70),
        ("completed", 100),
    ]
    for delivery in deliveries:
        assert set(delivery.json) == {"timestamp", "data"}
        assert isinstance(delivery.json["timestamp"], int)
        assert delivery.json["data"]["task_id"] == created["task_id"]
        assert set(delivery.json["data"]) == {
            "task_id", "model", "task_type", "status", "config", "input", "output",
            "meta", "detail", "logs", "error",
        }  # fmt: skip

    final = deliveries[-1].json["data"]
    assert final["output"]["task_progress"] == 100
    assert final["meta"]["ended_at"] != "0001-01-01T00:00:00Z"
    assert final["meta"]["usage"]["consume"] > 0
    assert final["output"]["actions"] == [
        "reroll", "upscale1", "upscale2", "upscale3", "upscale4",
        "variation1", "variation2", "variation3", "variation4",
    ]  # fmt: skip
    assert len(final["output"]["intermediate_image_urls"]) == 2
    assert final == await sandbox.task(created["task_id"])


async def test_images_are_real_pngs_with_grid_and_four_splits(sandbox):
    done = await sandbox.completed("a lighthouse on a cliff at dusk")
    output = done["output"]
    assert png_size(await download(sandbox, output["image_url"])) == (512, 512)
    assert len(output["image_urls"]) == 4
    assert output["temporary_image_urls"] == output["image_urls"]
    splits = [await download(sandbox, url) for url in output["image_urls"]]
    assert [png_size(split) for split in splits] == [(256, 256)] * 4
    assert len(set(splits)) == 4
    for url in output["intermediate_image_urls"]:
        png_size(await download(sandbox, url))


async def test_default_sizes_respect_the_aspect_ratio(start_sandbox):
    sandbox = await start_sandbox(grid_long_side=1024, upscale_long_side=2048)
    wide = await sandbox.completed("a wide desert road", aspect_ratio="16:9")
    assert wide["input"]["aspect_ratio"] == "16:9"
    assert png_size(await download(sandbox, wide["output"]["image_url"])) == (1024, 576)
    assert png_size(await download(sandbox, wide["output"]["image_urls"][0])) == (512, 288)
    upscale = await sandbox.submit("upscale", {"origin_task_id": wide["task_id"], "index": "2"})
    done = await sandbox.finished(upscale.json()["data"]["task_id"])
    assert png_size(await download(sandbox, done["output"]["image_url"])) == (2048, 1152)


async def test_midjourney_parameters_in_the_prompt(sandbox):
    tall = await sandbox.completed("a tall tower --ar 2:3 --v 6.1")
    assert tall["input"]["aspect_ratio"] == "2:3"
    assert tall["meta"]["model_version"] == "6.1"
    assert png_size(await download(sandbox, tall["output"]["image_url"])) == (342, 512)


async def test_upscale_of_a_split_is_a_bigger_image(sandbox, receiver):
    origin = await sandbox.completed("an owl on a branch", aspect_ratio="4:3")
    response = await sandbox.submit("upscale", {"origin_task_id": origin["task_id"], "index": "3"})
    assert response.status_code == 200, response.text
    created = response.json()["data"]
    assert created["task_type"] == "upscale"
    assert created["input"] == {"origin_task_id": origin["task_id"], "index": "3"}
    done = await sandbox.finished(created["task_id"])
    assert done["status"] == "completed"
    split = png_size(await download(sandbox, origin["output"]["image_urls"][2]))
    upscaled = png_size(await download(sandbox, done["output"]["image_url"]))
    assert upscaled[0] > split[0]
    assert upscaled[1] > split[1]
    assert max(upscaled) == 1024
    assert abs(upscaled[0] / upscaled[1] - split[0] / split[1]) < 0.01
    assert done["output"]["image_urls"] == [done["output"]["image_url"]]
    assert "upscale_subtle" in done["output"]["actions"]
    assert "high_variation" in done["output"]["actions"]
    deliveries = await receiver.wait_terminal(created["task_id"])
    assert deliveries[-1].json["data"]["status"] == "completed"


async def test_variation_and_reroll_make_new_grids(sandbox):
    origin = await sandbox.completed("a koi pond in autumn")
    variation, reroll, upscale = await asyncio.gather(
        sandbox.submit(
            "variation", {"origin_task_id": origin["task_id"], "index": 2, "prompt": "a koi pond"}
        ),
        sandbox.submit("reroll", {"origin_task_id": origin["task_id"]}),
        sandbox.submit("upscale", {"origin_task_id": origin["task_id"], "index": "1"}),
    )
    assert variation.status_code == reroll.status_code == upscale.status_code == 200
    assert variation.json()["data"]["input"]["index"] == "2"
    origin_grid = await download(sandbox, origin["output"]["image_url"])
    for created in (variation.json()["data"], reroll.json()["data"]):
        done = await sandbox.finished(created["task_id"])
        assert done["status"] == "completed"
        assert len(done["output"]["image_urls"]) == 4
        grid = await download(sandbox, done["output"]["image_url"])
        assert png_size(grid) == (512, 512)
        assert grid != origin_grid

    upscaled = await sandbox.finished(upscale.json()["data"]["task_id"])
    subtle = await sandbox.submit(
        "variation", {"origin_task_id": upscaled["task_id"], "index": "low_variation"}
    )
    assert subtle.status_code == 200, subtle.text
    assert (await sandbox.finished(subtle.json()["data"]["task_id"]))["status"] == "completed"
    wrong = await sandbox.submit("upscale", {"origin_task_id": upscaled["task_id"], "index": "1"})
    assert wrong.status_code == 400


async def test_auth_is_required(sandbox):
    for headers in ({}, {"x-api-key": "wrong"}):
        response = await sandbox.http.post(
            f"{sandbox.base_url}/api/v1/task",
            json={"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}},
            headers=headers,
        )
        assert response.status_code == 401
        body = response.json()
        assert body["code"] == 401
        assert body["message"]
    response = await sandbox.http.get(f"{sandbox.base_url}/api/v1/task/anything")
    assert response.status_code == 401


async def test_validation_errors_are_goapi_style(sandbox):
    bad_inputs = [
        ("imagine", {}),
        ("imagine", {"prompt": "   "}),
        ("imagine", {"prompt": "x", "aspect_ratio": "wide"}),
        ("imagine", {"prompt": "x", "process_mode": "ludicrous"}),
        ("upscale", {"origin_task_id": "x", "index": "5"}),
        ("variation", {"origin_task_id": "x", "index": 7}),
        ("describe", {"image_url": "http://example.com/x.png"}),
        ("imagine", {"prompt": "a cat --sandbox-no-such-knob"}),
        ("imagine", {"prompt": "a cat --sandbox-queue-delay=soon"}),
    ]
    for task_type, task_input in bad_inputs:
        response = await sandbox.submit(task_type, task_input)
        assert response.status_code == 400, (task_type, task_input, response.text)
        body = response.json()
        assert body["code"] == 400
        assert body["data"] is None
        assert body["message"]
    response = await sandbox.http.post(
        f"{sandbox.base_url}/api/v1/task",
        content=b"{not json",
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == 400


async def test_unknown_and_unfinished_origins_are_rejected(sandbox):
    response = await sandbox.submit("upscale", {"origin_task_id": "no-such-task", "index": "1"})
    assert response.status_code == 400
    assert "not found" in response.json()["message"]
    pending = await sandbox.imagine("a slow one --sandbox-queue-delay=2000")
    response = await sandbox.submit("upscale", {"origin_task_id": pending["task_id"], "index": "1"})
    assert response.status_code == 400
    assert "not completed" in response.json()["message"]
    response = await sandbox.http.get(
        f"{sandbox.base_url}/api/v1/task/no-such-task", headers={"x-api-key": API_KEY}
    )
    assert response.status_code == 404
    assert response.json()["code"] == 404


async def test_cancel_only_while_pending(sandbox, receiver):
    pending = await sandbox.imagine("to be cancelled --sandbox-queue-delay=3000")
    response = await sandbox.http.delete(
        f"{sandbox.base_url}/api/v1/task/{pending['task_id']}", headers={"x-api-key": API_KEY}
    )
    assert response.status_code == 200, response.text
    # As GoAPI answers: a message, no task.
    assert response.json() == {"code": 200, "message": f"task {pending['task_id']} canceled"}
    deliveries = await receiver.wait_terminal(pending["task_id"])
    assert deliveries[-1].json["data"]["status"] == "cancelled"
    again = await sandbox.http.delete(
        f"{sandbox.base_url}/api/v1/task/{pending['task_id']}", headers={"x-api-key": API_KEY}
    )
    assert again.status_code == 400
    done = await sandbox.completed("finished already")
    response = await sandbox.http.delete(
        f"{sandbox.base_url}/api/v1/task/{done['task_id']}", headers={"x-api-key": API_KEY}
    )
    assert response.status_code == 400
    assert response.json()["code"] == 400


async def test_image_urls_use_the_public_base_url(start_sandbox):
    sandbox = await start_sandbox(public_base_url="https://cdn.example.test/sandbox/")
    created = await sandbox.imagine("a boat")
    done = await sandbox.finished(created["task_id"])
    assert done["output"]["image_url"].startswith("https://cdn.example.test/sandbox/images/")
    path = done["output"]["image_url"].removeprefix("https://cdn.example.test/sandbox")
    assert png_size(await download(sandbox, sandbox.base_url + path)) == (512, 512)


async def test_webhook_body_is_exactly_timestamp_and_data(sandbox, receiver):
    created = await sandbox.imagine("a paper crane")
    deliveries = await receiver.wait_terminal(created["task_id"])
    raw = json.loads(deliveries[-1].body)
    assert list(raw) == ["timestamp", "data"]
