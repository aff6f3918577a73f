"""Publication: how fast the publisher prepares and uploads (images/min, MB/s) to the
sandbox's SFTP agency on loopback, and its peak memory for batches of growing size.

    uv run python bench/publish.py --sizes 25,50,100 --megapixels 5

Runs the whole embedded stack (real PostgreSQL, NATS, S3, the sandbox's SFTP agency and the
services) in a temporary directory on free ports. Originals (a few distinct photo-like
PNGs of `--megapixels`) are put in the bucket and announced on the EVENTS stream as the
images service announces stored images; then, for each size, one batch is created through
the public API with `publish_when_ready` (metadata given, no language model), and timed
until every publication is `uploaded`. The publisher's resident memory (RSS) is sampled
every 50 ms; with bounded decoding (`PREPARE_CONCURRENCY`) and uploads (`UPLOAD_CONCURRENCY`)
its peak should not grow with the batch.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import nats
import psutil
from common import Figure
from PIL import Image, ImageFilter

from imagetron.stack import EmbeddedStack, StackPorts
from imagetron_contracts.models.images import Image as ImageModel
from imagetron_contracts.models.images import ImageEvent, ImageKind
from imagetron_platform.objects import minio_client

NAME = "publish"
VARIANTS = 4


def original(megapixels: float, seed: int) -> bytes:
    """A photo-like PNG: smooth gradients with fine grain (JPEG of it is a few MB)."""
    side = math.sqrt(megapixels * 1_000_000 / 1.5)
    width, height = int(side * 1.5), int(side)
    gradient = Image.linear_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), 24 + seed * 4).filter(ImageFilter.BoxBlur(1))
    rgb = Image.merge("RGB", (gradient, grain, gradient.rotate(180)))
    out = io.BytesIO()
    rgb.save(out, "PNG", compress_level=1)
    return out.getvalue()


async def announce(stack: EmbeddedStack, owner: uuid.UUID, count: int, mp: float) -> list[str]:
    infra = stack.infra.s3
    s3 = minio_client(
        infra.endpoint, access_key=infra.access_key, secret_key=infra.secret_key,
        region=infra.region,
    )  # fmt: skip
    keys: list[tuple[str, int, int, int]] = []
    for seed in range(min(count, VARIANTS)):
        data = original(mp, seed)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        key = f"{owner}/bench/original-{seed}.png"
        await asyncio.to_thread(s3.put_object, "imagetron", key, io.BytesIO(data), len(data))
        keys.append((key, width, height, len(data)))
    nc = await nats.connect(**stack.nats_connect_options())
    js = nc.jetstream()
    ids = []
    now = datetime.now(UTC)
    for i in range(count):
        key, width, height, size = keys[i % len(keys)]
        image_id = uuid.uuid4()
        event = ImageEvent(
            id=uuid.uuid4(), type="image.persisted", occurred_at=now, owner_id=owner,
            image=ImageModel(
                id=image_id, owner_id=owner, task_id=uuid.uuid4(), prompt_id=uuid.uuid4(),
                kind=ImageKind.upscale, index=1, is_persisted=True, content_type="image/png",
                bytes=size, width=width, height=height, sha256="0" * 64, attempts=1,
                created_at=now, persisted_at=now,
            ),
            storage_key=key, prompt_text=f"a photo of a pear number {i} on linen",
            prompt_title=f"Pear {i} on linen",
        )  # fmt: skip
        await js.publish(
            f"events.images.{owner}.image.persisted",
            json.dumps(event.model_dump(mode="json")).encode(),
            headers={"Nats-Msg-Id": str(event.id)},
        )
        ids.append(str(image_id))
    await nc.close()
    return ids


async def publish(
    client: httpx.AsyncClient, image_ids: list[str], pid: int
) -> tuple[float, int, float]:
    """Seconds until every publication is uploaded, bytes uploaded, peak RSS (MB)."""
    process = psutil.Process(pid)
    peak = process.memory_info().rss
    started = time.perf_counter()
    created = await client.post(
        "/api/v1/publications",
        json={
            "image_ids": image_ids,
            "suggest_metadata": False,
            "publish_when_ready": True,
            "metadata": {"keywords": ["pear", "fruit", "still life", "linen"], "category": 7},
        },
    )
    assert created.status_code == 201, created.text
    batch = created.json()["batch"]["id"]
    last_check = 0.0
    while True:
        peak = max(peak, process.memory_info().rss)
        if time.perf_counter() - last_check > 0.5:
            last_check = time.perf_counter()
            counts = (await client.get(f"/api/v1/publications/batches/{batch}")).json()["counts"]
            if counts.get("uploaded", 0) == len(image_ids):
                break
            stuck = {k: v for k, v in counts.items() if k in ("failed", "blocked")}
            assert not stuck, counts
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    total = 0
    cursor = None
    while True:
        params = {"batch_id": batch, "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/publications", params=params)).json()
        total += sum(p["file"]["bytes"] for p in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return elapsed, total, peak / 1e6


def main(sizes: list[int], megapixels: float) -> None:
    # The stack migrates and provisions with asyncio.run: start it outside the loop.
    with (
        tempfile.TemporaryDirectory(prefix="imagetron-bench-") as root,
        EmbeddedStack(root, StackPorts.free()) as stack,
    ):
        asyncio.run(run(stack, sizes, megapixels))


@dataclass(frozen=True)
class Size:
    batch: int = 50
    megapixels: float = 5.0


SMALL = Size(batch=2, megapixels=4.1)  # Adobe Stock takes 4 MP and more


async def _publishing_user(stack: EmbeddedStack) -> tuple[dict[str, str], uuid.UUID]:
    admin = {"Authorization": f"Bearer {stack.admin_api_key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=admin, timeout=30) as c:
        name = f"bench-{uuid.uuid4().hex[:6]}"
        user = (await c.post("/api/v1/users", json={"name": name})).json()
    return {"Authorization": f"Bearer {user['api_key']}"}, uuid.UUID(user["user"]["id"])


async def _prepared(
    stack: EmbeddedStack, client: httpx.AsyncClient, owner: uuid.UUID, count: int, mp: float
) -> list[str]:
    """The publisher's account at the agency, and `count` stored images it knows of."""
    account = await client.put(
        "/api/v1/publications/accounts/adobe_stock",
        json={"username": "bench", "password": "sandbox"},
    )
    assert account.status_code == 200, account.text
    image_ids = await announce(stack, owner, count, mp)
    while (
        await client.get("/api/v1/publications/readiness", params={"image_id": image_ids[-1]})
    ).status_code != 200:
        await asyncio.sleep(0.2)
    return image_ids


async def figures(stack: EmbeddedStack, size: Size) -> list[Figure]:
    """One batch of `size.batch` images of `size.megapixels`, as figures for `make bench`."""
    headers, owner = await _publishing_user(stack)
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=60) as client:
        image_ids = await _prepared(stack, client, owner, size.batch, size.megapixels)
        pid = stack.apps["publisher"].pid
        assert pid is not None
        elapsed, total, peak = await publish(client, image_ids, pid)
    note = f"{size.batch} images of {size.megapixels:g} MP PNG, {total / 1e6:.1f} MB uploaded"
    return [
        Figure(NAME, "images prepared and uploaded by SFTP", size.batch / elapsed * 60,
               "/min", better="higher", note=note),
        Figure(NAME, "upload throughput", total / elapsed / 1e6, "MB/s", better="higher"),
        Figure(NAME, "publisher peak RSS", peak / 1.048576, "MiB"),
    ]  # fmt: skip


async def run(stack: EmbeddedStack, sizes: list[int], megapixels: float) -> None:
    headers, owner = await _publishing_user(stack)
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=60) as client:
        image_ids = await _prepared(stack, client, owner, sum(sizes), megapixels)
        pid = stack.apps["publisher"].pid
        assert pid is not None
        idle = psutil.Process(pid).memory_info().rss / 1e6
        print(f"originals: {megapixels:g} MP PNG; publisher idle RSS {idle:.0f} MB")
        print(f"{'batch':>6} {'seconds':>8} {'images/min':>11} {'MB/s':>7} "
              f"{'MB up':>7} {'peak RSS MB':>12}")  # fmt: skip
        offset = 0
        for size in sizes:
            ids = image_ids[offset : offset + size]
            offset += size
            elapsed, total, peak = await publish(client, ids, pid)
            print(
                f"{size:>6} {elapsed:>8.1f} {size / elapsed * 60:>11.1f} "
                f"{total / elapsed / 1e6:>7.2f} {total / 1e6:>7.1f} {peak:>12.0f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25,50,100", help="batch sizes, comma-separated")
    parser.add_argument("--megapixels", type=float, default=5.0)
    args = parser.parse_args()
    main([int(s) for s in args.sizes.split(",")], args.megapixels)
