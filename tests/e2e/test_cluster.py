"""Multi-node for real: `imagetron up --cluster` on one machine — a three-node NATS
JetStream cluster (streams with three replicas, the per-service users on every node) and
two replicas of every service, the gateways and notifiers behind the proxy.

Under a steady load of imagines, with SSE clients following through the gateway, one NATS
node and one replica of every service are killed with SIGKILL; the supervisor brings them
back. Nothing may be lost (every task completes with its five images stored), nothing
applied twice (no image stored twice, no aggregate version announced twice) and every SSE
client resumes with `Last-Event-ID`: no gap, no duplicate. The figures are printed
(`pytest -s`); the README quotes them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import nats
import pytest
from nats.errors import NoServersError

from imagetron.chaos import (
    CHAOS_ENV,
    Audit,
    Load,
    Supervised,
    audit,
    following,
    healed,
    kill,
    kill_in_turn,
    user,
)
from imagetron.stack import CLUSTER, EmbeddedStack, StackPorts
from imagetron.testing import kept_logs, server_root

pytestmark = [pytest.mark.e2e]

#: One NATS node and one replica of every service of ours.
VICTIMS = ("nats-1", "gateway-1", "notifier-1", "prompts-1", "images-1", "publisher-1")
TASKS = 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """The cluster, its processes not measured for coverage (`make test`): the single-node
    stack of the other end-to-end tests runs the same code measured, and tracing the imports
    of eleven processes (and of every restart) on two cores doubles how long they take."""
    with pytest.MonkeyPatch.context() as unmeasured:
        for variable in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START"):
            unmeasured.delenv(variable, raising=False)
        with (
            server_root(tmp_path_factory, "cluster") as root,
            EmbeddedStack(
                root,
                StackPorts.free(),
                admin_api_key="itk_cluster-admin",
                extra_env=CHAOS_ENV,
                shape=CLUSTER,
            ) as stack,
        ):
            yield stack


async def test_the_cluster_is_three_nodes_with_users_on_each_and_streams_of_three(cluster):
    assert len(cluster.infra.nats_nodes) == 3
    for node in cluster.infra.nats_nodes:
        # Every node has the users: anonymous is refused, each service's user gets in.
        with pytest.raises((NoServersError, nats.errors.Error, OSError)):
            await nats.connect(node.url, allow_reconnect=False, max_reconnect_attempts=0)
        options = {**cluster.nats_connect_options("images"), "servers": [node.url]}
        nc = await nats.connect(**options, allow_reconnect=False)
        await nc.close()
    nc = await nats.connect(**cluster.nats_connect_options())
    try:
        js = nc.jetstream()
        for stream in ("WEBHOOKS", "WORK", "EVENTS"):
            info = await js.stream_info(stream)
            assert info.config.num_replicas == 3, stream
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2, (stream, info.cluster)
    finally:
        await nc.close()


def _unfinished(result: Audit, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The failure message of an audit that found tasks unfinished."""
    return (
        f"{len(result.not_completed)} tasks not finished:\n"
        + "".join(f"  {task_id}: {state}\n" for task_id, state in result.not_completed.items())
        + f"the stack's logs: {kept_logs(tmp_path_factory, 'cluster')} (kept once it stops)"
    )


async def test_killing_a_nats_node_and_a_replica_of_each_service_loses_nothing(
    cluster, tmp_path_factory
):
    started = time.monotonic()
    async with user(cluster, "artist") as artist, following(artist, 3) as followers:
        load = Load(artist)
        with Supervised(cluster) as supervised:
            loading = asyncio.create_task(load.run(count=TASKS, every=0.6))
            await asyncio.sleep(2.0)  # under way: tasks at every stage
            killed = [kill(cluster, name) for name in VICTIMS]
            heal_seconds = await asyncio.gather(*(healed(cluster, k, within=150) for k in killed))
            await loading
            result = await audit(cluster, artist, load, followers, within=120)
    healing = dict(zip(VICTIMS, heal_seconds, strict=True))
    print(
        f"\ncluster: {result.figures()}; kill -9 -> ready again (s): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in healing.items())
        + f"; imagine retries {load.retries}; whole test {time.monotonic() - started:.0f} s; "
        f"orphan objects: {result.unexpected_objects}"
    )
    assert not load.refused, load.refused
    assert result.tasks == TASKS
    assert result.not_completed == {}, _unfinished(result, tmp_path_factory)
    assert result.images == TASKS * 5
    assert result.images_missing == 0
    assert result.objects_missing == 0, "every image stored"
    assert result.images_stored_twice == 0
    assert result.unexpected_objects == [], "no orphan object"
    assert result.tasks_not_asked_for == 0, "no request done twice"
    assert result.events_applied_twice == 0
    assert (result.sse_gaps, result.sse_duplicates, result.sse_out_of_order) == (0, 0, 0), (
        result.sse_missing
    )
    # The followers whose gateway or notifier died came back (at least one did).
    assert result.sse_reconnects >= 1
    # Five Python services restarting at once on two cores (shared with the rest of the
    # suite) take a while to import; the figures above say how long. The bound only catches
    # a process that does not come back.
    assert max(heal_seconds) < 150, healing
    restarted = {line.split()[0] for line in supervised.lines if " restarted (pid " in line}
    assert restarted == set(VICTIMS), supervised.lines


#: Every kind of process but the sandbox (a third party's stand-in: a provider that forgets
#: its tasks is covered by the images service's own tests), one of each, in a random order.
KINDS = (
    "postgres", "nats-2", "s3", "proxy",
    "gateway-2", "notifier-2", "prompts-2", "images-2", "publisher-2",
)  # fmt: skip
#: The storm: the sandbox sends each webhook three times, out of order.
STORM = "a quince on slate --sandbox-duplicate-webhooks=2 --sandbox-out-of-order"


async def test_chaos_kill_every_kind_of_process_in_turn_under_a_webhook_storm(
    cluster, tmp_path_factory
):
    """The short chaos run (the long one is bench/chaos.py): under steady imagines whose
    webhooks come duplicated and out of order, every kind of process is killed in turn with
    SIGKILL while SSE clients follow; the supervisor heals each. Zero lost webhooks, images
    stored twice, leaked slots and SSE gaps."""
    order = list(KINDS)
    random.Random(int(time.time())).shuffle(order)
    async with user(cluster, "chaos") as artist, following(artist, 2) as followers:
        load = Load(artist)
        with Supervised(cluster):
            loading = asyncio.create_task(
                load.run(count=TASKS, every=0.6, text=STORM, imagine={"resubmit_if_lost": True})
            )
            killed = await kill_in_turn(cluster, order, every=0.8)
            await loading
            result = await audit(cluster, artist, load, followers, within=120)
    print(
        "\nchaos: killed in turn "
        + ", ".join(f"{k.name} (back in {k.healed_after:.1f} s)" for k in killed)
        + f"; {result.figures()}; imagine retries {load.retries}"
    )
    assert not load.refused, load.refused
    assert result.tasks == TASKS
    assert result.not_completed == {}, _unfinished(result, tmp_path_factory)
    assert result.clean, result
