"""The notifier against a real NATS server and real uvicorn sockets."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import nats
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from pydantic import SecretStr
from starlette.requests import Request

from imagetron.servers import free_port
from imagetron.testing import serving
from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_notifier.bootstrap import create_app
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform.events_tokens import issue_events_token
from imagetron_platform.nats_connection import provision_streams

pytestmark = pytest.mark.integration
SECRET = "notifier-test-secret"


@pytest.fixture
async def js(nats_url) -> AsyncIterator[nats.js.JetStreamContext]:
    nc = await nats.connect(nats_url)
    jetstream = nc.jetstream()
    await provision_streams(jetstream)
    yield jetstream
    await nc.close()


def _heartbeat(sse: ServerSentEvent) -> bool:
    """A heartbeat (a comment) surfaces in httpx-sse as a nameless event carrying the last id
    seen, where a browser's EventSource dispatches nothing: not an event."""
    return sse.event in ("", "message") and not sse.data


def _settings(nats_url: str, **overrides) -> NotifierSettings:
    return NotifierSettings(nats_url=nats_url, events_token_secret=SecretStr(SECRET), **overrides)


async def _publish(js, owner: uuid.UUID, name: str, n: int) -> list[int]:
    """Publish n task events for `owner`; returns their stream sequences."""
    seqs = []
    for i in range(n):
        payload = {
            "id": str(uuid.uuid4()),
            "type": f"task.{name}",
            "owner_id": str(owner),
            "occurred_at": datetime.now(UTC).isoformat(),
            "n": i,
        }
        ack = await js.publish(
            f"events.images.{owner}.task.{name}",
            json.dumps(payload).encode(),
            stream=EVENTS_STREAM.name,
        )
        seqs.append(ack.seq)
    return seqs


async def _read(
    base_url: str,
    owner: uuid.UUID,
    count: int,
    last_event_id: int | None = None,
    timeout: float = 10.0,
) -> list[tuple[int, str, dict]]:
    token, _ = issue_events_token(SECRET, owner, 60)
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    got: list[tuple[int, str, dict]] = []

    async def consume() -> None:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=None) as client,
            aconnect_sse(client, "GET", "/events", headers=headers) as source,
        ):
            async for sse in source.aiter_sse():
                if sse.event in ("message", ""):
                    continue
                got.append((int(sse.id) if sse.id else -1, sse.event, json.loads(sse.data)))
                if len(got) >= count:
                    return

    await asyncio.wait_for(consume(), timeout)
    return got


async def _connected(base_url: str, owner: uuid.UUID, into: list, ready: asyncio.Event) -> None:
    token, _ = issue_events_token(SECRET, owner, 60)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=None) as client,
        aconnect_sse(
            client, "GET", "/events", headers={"Authorization": f"Bearer {token}"}
        ) as source,
    ):
        ready.set()
        async for sse in source.aiter_sse():
            if sse.id and not _heartbeat(sse):
                into.append((int(sse.id), sse.event))


async def test_replays_in_order_with_stream_sequences_as_ids(nats_url, js):
    owner = uuid.uuid4()
    seqs = await _publish(js, owner, "progress", 5)
    async with serving(create_app(_settings(nats_url))) as url:
        got = await _read(url, owner, 5, last_event_id=seqs[0] - 1)
    assert [s for s, _, _ in got] == seqs
    assert {t for _, t, _ in got} == {"task.progress"}
    assert [d["n"] for _, _, d in got] == [0, 1, 2, 3, 4]


async def test_live_events_reach_only_their_owner(nats_url, js):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    async with serving(create_app(_settings(nats_url))) as url:
        alice_seen, bob_seen = [], []
        ready_a, ready_b = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(_connected(url, alice, alice_seen, ready_a)),
            asyncio.create_task(_connected(url, bob, bob_seen, ready_b)),
        ]
        await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 5)
        await asyncio.sleep(0.2)  # the ordered consumers are created after the headers
        alice_seqs = await _publish(js, alice, "completed", 3)
        for _ in range(100):
            if len(alice_seen) == 3:
                break
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert [s for s, _ in alice_seen] == alice_seqs
    assert bob_seen == []


async def test_resume_after_a_drop_has_no_gap_and_no_duplicate(nats_url, js):
    owner = uuid.uuid4()
    first = await _publish(js, owner, "progress", 3)
    async with serving(create_app(_settings(nats_url))) as url:
        before = await _read(url, owner, 2, last_event_id=first[0] - 1)
        # The client dropped after the second event; more happened while it was away.
        later = await _publish(js, owner, "completed", 2)
        after = await _read(url, owner, 3, last_event_id=before[-1][0])
    assert [s for s, _, _ in before] == first[:2]
    assert [s for s, _, _ in after] == [first[2], *later]


async def test_resume_across_a_notifier_restart(nats_url, js):
    owner = uuid.uuid4()
    port = free_port()
    seqs = await _publish(js, owner, "progress", 2)
    async with serving(create_app(_settings(nats_url)), port) as url:
        first = await _read(url, owner, 1, last_event_id=seqs[0] - 1)
    more = await _publish(js, owner, "completed", 1)  # while no notifier runs
    async with serving(create_app(_settings(nats_url)), port) as url:
        resumed = await _read(url, owner, 2, last_event_id=first[-1][0])
    assert [s for s, _, _ in resumed] == [seqs[1], *more]


async def test_two_replicas_each_deliver_every_event_to_their_clients(nats_url, js):
    owner = uuid.uuid4()
    async with (
        serving(create_app(_settings(nats_url))) as one,
        serving(create_app(_settings(nats_url))) as two,
    ):
        seen_one, seen_two = [], []
        r1, r2 = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(_connected(one, owner, seen_one, r1)),
            asyncio.create_task(_connected(two, owner, seen_two, r2)),
        ]
        await asyncio.wait_for(asyncio.gather(r1.wait(), r2.wait()), 5)
        await asyncio.sleep(0.2)
        seqs = await _publish(js, owner, "progress", 4)
        for _ in range(100):
            if len(seen_one) == len(seen_two) == 4:
                break
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert [s for s, _ in seen_one] == seqs
    assert [s for s, _ in seen_two] == seqs


async def test_bad_tokens_are_401_and_the_cap_is_503_with_retry_after(nats_url, js):
    owner = uuid.uuid4()
    app = create_app(_settings(nats_url, max_connections=1))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=5) as client:
        forged, _ = issue_events_token("wrong", owner, 60)
        expired, _ = issue_events_token(SECRET, owner, 1, now=0)
        for token in (forged, expired, "junk"):
            response = await client.get("/events", params={"token": token})
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
        holder, ready = [], asyncio.Event()
        held = asyncio.create_task(_connected(url, owner, holder, ready))
        await asyncio.wait_for(ready.wait(), 5)
        token, _ = issue_events_token(SECRET, owner, 60)
        refused = await client.get("/events", params={"token": token})
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"


async def test_an_id_older_than_the_stream_gets_a_reset_event(nats_url, js):
    owner = uuid.uuid4()
    await _publish(js, owner, "progress", 2)
    await js.purge_stream(EVENTS_STREAM.name)  # everything so far is gone
    live = await _publish(js, owner, "completed", 1)
    async with serving(create_app(_settings(nats_url))) as url:
        got = await _read(url, owner, 1, last_event_id=1)
    [(_, event, data)] = got
    assert event == "reset"
    assert data["requested_after"] == 1
    assert data["oldest_kept"] >= live[0]


async def test_an_id_from_the_future_gets_a_reset_and_then_live_events(nats_url, js):
    """A made-up (or pre-wipe) id past the stream's end must not hold back live events
    until the stream reaches it: the client is told to reload and then follows live."""
    owner = uuid.uuid4()
    token, _ = issue_events_token(SECRET, owner, 60)
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": "9" * 19}
    async with (
        serving(create_app(_settings(nats_url))) as url,
        httpx.AsyncClient(base_url=url, timeout=None) as client,
        aconnect_sse(client, "GET", "/events", headers=headers) as source,
    ):
        events = (sse async for sse in source.aiter_sse() if sse.event not in ("message", ""))
        async with asyncio.timeout(10):
            reset = await anext(events)
            live = await _publish(js, owner, "completed", 1)
            completed = await anext(events)
    assert reset.event == "reset"
    assert (completed.event, int(completed.id)) == ("task.completed", live[0])


async def _publish_for_task(js, owner, task_id, n, name="progress", pad=0):
    seqs = []
    for i in range(n):
        payload = {
            "id": str(uuid.uuid4()),
            "type": f"task.{name}",
            "owner_id": str(owner),
            "occurred_at": datetime.now(UTC).isoformat(),
            "task": {"id": str(task_id), "prompt_id": str(uuid.uuid4()), "n": i},
            "pad": "x" * pad,
        }
        ack = await js.publish(
            f"events.images.{owner}.task.{name}",
            json.dumps(payload).encode(),
            stream=EVENTS_STREAM.name,
        )
        seqs.append(ack.seq)
    return seqs


async def test_filters_narrow_the_stream_to_one_task_or_type(nats_url, js):
    owner, wanted, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    start = (await _publish_for_task(js, owner, other, 1))[0]
    mine = await _publish_for_task(js, owner, wanted, 2)
    await _publish_for_task(js, owner, other, 2)
    done = await _publish_for_task(js, owner, wanted, 1, name="completed")
    token, _ = issue_events_token(SECRET, owner, 60)
    async with (
        serving(create_app(_settings(nats_url))) as url,
        httpx.AsyncClient(base_url=url, timeout=None) as client,
    ):

        async def read(params, count):
            got = []
            async with aconnect_sse(
                client,
                "GET",
                "/events",
                params={"token": token, **params},
                headers={"Last-Event-ID": str(start - 1)},
            ) as source:
                async for sse in source.aiter_sse():
                    if sse.id and not _heartbeat(sse):
                        got.append(int(sse.id))
                        if len(got) == count:
                            return got
            return got

        by_task = await asyncio.wait_for(read({"task_id": str(wanted)}, 3), 10)
        by_type = await asyncio.wait_for(
            read({"task_id": str(wanted), "types": "task.completed"}, 1), 10
        )
        bad = await client.get("/events", params={"token": token, "types": "no dots"})
    assert by_task == [*mine, *done]
    assert by_type == done
    assert bad.status_code == 422


async def test_departed_clients_are_cleaned_up_promptly(nats_url, js):
    owner = uuid.uuid4()
    async with serving(create_app(_settings(nats_url))) as url:
        seen, ready = [], asyncio.Event()
        task = asyncio.create_task(_connected(url, owner, seen, ready))
        await asyncio.wait_for(ready.wait(), 5)

        async def open_connections() -> float:
            async with httpx.AsyncClient(base_url=url) as client:
                text = (await client.get("/metrics")).text
            line = next(x for x in text.splitlines() if x.startswith("imagetron_sse_connections "))
            return float(line.split()[1])

        for _ in range(50):
            if await open_connections() == 1:
                break
            await asyncio.sleep(0.05)
        assert await open_connections() == 1
        task.cancel()  # the browser tab closes
        await asyncio.gather(task, return_exceptions=True)
        for _ in range(60):
            if await open_connections() == 0:
                break
            await asyncio.sleep(0.05)
        assert await open_connections() == 0


async def test_events_published_during_a_replay_are_neither_lost_nor_repeated(nats_url, js):
    owner, task_id = uuid.uuid4(), uuid.uuid4()
    before = await _publish_for_task(js, owner, task_id, 300)
    async with serving(create_app(_settings(nats_url))) as url:
        reader = asyncio.create_task(
            _read(url, owner, 600, last_event_id=before[0] - 1, timeout=30)
        )
        during = await _publish_for_task(js, owner, task_id, 300)
        got = await reader
    assert [s for s, _, _ in got] == before + during


async def test_a_client_too_slow_for_its_queue_catches_up_from_the_stream(nats_url, js):
    owner, task_id = uuid.uuid4(), uuid.uuid4()
    token, _ = issue_events_token(SECRET, owner, 60)
    async with serving(create_app(_settings(nats_url, client_queue_size=5))) as url:
        async with (
            httpx.AsyncClient(base_url=url, timeout=None) as client,
            aconnect_sse(
                client, "GET", "/events", headers={"Authorization": f"Bearer {token}"}
            ) as source,
        ):
            await asyncio.sleep(0.3)
            # 8 MB of events while the client reads nothing: the socket and the queue fill up.
            seqs = await _publish_for_task(js, owner, task_id, 400, pad=20_000)
            await asyncio.sleep(0.5)
            got = []

            async def drain():
                async for sse in source.aiter_sse():
                    if sse.id and not _heartbeat(sse):
                        got.append(int(sse.id))
                        if len(got) == len(seqs):
                            return

            await asyncio.wait_for(drain(), 30)
    assert got == seqs


async def test_the_events_cookie_authenticates_a_browser_routed_straight_here(nats_url, js):
    owner = uuid.uuid4()
    seqs = await _publish(js, owner, "progress", 1)
    token, _ = issue_events_token(SECRET, owner, 60)
    async with (
        serving(create_app(_settings(nats_url))) as url,
        httpx.AsyncClient(
            base_url=url, timeout=None, cookies={"imagetron_events": token}
        ) as client,
    ):
        async with aconnect_sse(
            client, "GET", "/api/v1/events", headers={"Last-Event-ID": str(seqs[0] - 1)}
        ) as source:
            async for sse in source.aiter_sse():
                if sse.id:
                    assert int(sse.id) == seqs[0]
                    break
        client.cookies.set("imagetron_events", "forged.token")
        forged = await client.get("/api/v1/events")
    assert forged.status_code == 401


async def test_idle_connections_get_heartbeat_comments(nats_url, js):
    owner = uuid.uuid4()
    token, _ = issue_events_token(SECRET, owner, 60)
    app = create_app(_settings(nats_url, heartbeat_seconds=0.2))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=None) as client:
        async with client.stream("GET", "/events", params={"token": token}) as response:
            beats = 0

            async def count() -> None:
                nonlocal beats
                async for line in response.aiter_lines():
                    if line == ": heartbeat":
                        beats += 1
                        if beats == 3:
                            return

            await asyncio.wait_for(count(), 5)
    assert beats == 3


async def test_an_open_stream_holds_no_request_and_has_the_platform_headers(nats_url, js):
    """Thousands of streams stay open for hours: each is served after FastAPI's routing has
    returned, so none keeps the routing's request, dependencies and frames alive; it is
    still served inside the platform's middleware (request id, security headers)."""
    owner = uuid.uuid4()
    token, _ = issue_events_token(SECRET, owner, 60)
    request_id = str(uuid.uuid4())
    app = create_app(_settings(nats_url, heartbeat_seconds=0.1))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=None) as client:
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": request_id}
        async with client.stream("GET", "/events", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-request-id"] == request_id
            assert response.headers["x-content-type-options"] == "nosniff"
            lines = response.aiter_lines()
            while await asyncio.wait_for(anext(lines), 5) != ": heartbeat":
                pass  # streaming: the first frames and a heartbeat have been sent
            gc.collect()
            held = [
                obj
                for obj in gc.get_objects()
                if isinstance(obj, Request)
                and (b"x-request-id", request_id.encode()) in obj.scope.get("headers", [])
            ]
            assert held == []
            # The scope lives as long as the stream; what the routing kept in it does not.
            [scope] = [
                obj
                for obj in gc.get_objects()
                if isinstance(obj, dict)
                and obj.get("type") == "http"
                and (b"x-request-id", request_id.encode()) in obj.get("headers", [])
            ]
            routing = [k for k in scope if k.startswith(("fastapi_", "starlette."))]
            assert routing == []
