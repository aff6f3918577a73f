"""Chaos: random kill -9 of every kind of process under steady load, the supervisor healing,
and a duplicate/out-of-order webhook storm; prints what was lost, doubled or late.

    uv run python bench/chaos.py --minutes 5 --kills 30
    uv run python bench/chaos.py --single            # one NATS node, one replica each

Runs `imagetron up --cluster`'s shape (three NATS nodes, two replicas of every service
behind the proxy; `--single`: the plain stack) in a temporary directory on free ports,
supervised as `imagetron up` supervises it. An artist imagines at a steady pace
(`--every` seconds), each imagine's webhooks sent `--duplicates` + 1 times and out of order
by the sandbox, with `resubmit_if_lost` (a task the provider forgot is sent again), while
SSE clients follow through the gateway and reconnect with `Last-Event-ID`. Meanwhile a
random process (any kind: PostgreSQL, a NATS node, S3, the proxy, the sandbox, a service
replica) is killed with SIGKILL every `--interval` seconds, and the time until it answers
again is measured. At the end every task must have completed with its five images stored
once. Printed: each kill and its recovery time, then lost webhooks (tasks that did not
complete), images missing or stored twice, events applied twice, leaked slots (tasks still
holding one), SSE gaps, duplicates and reconnects, and recovery time percentiles. The exit
code is 1 when anything was lost or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time

from imagetron.chaos import (
    CHAOS_ENV,
    Killed,
    Load,
    Supervised,
    audit,
    following,
    healed,
    kill,
    kill_order,
    user,
)
from imagetron.stack import CLUSTER, ClusterShape, EmbeddedStack, StackPorts


async def chaos(stack: EmbeddedStack, args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    names = [name for name, _ in stack.processes()]
    storm = f"a quince on slate --sandbox-duplicate-webhooks={args.duplicates}"
    storm += " --sandbox-out-of-order"
    tasks = max(1, int(args.minutes * 60 / args.every))
    async with user(stack, "chaos") as artist, following(artist, args.followers) as followers:
        load = Load(artist)
        killed: list[Killed] = []
        with Supervised(stack, say=lambda line: print(f"  supervisor: {line}")):
            loading = asyncio.create_task(
                load.run(tasks, args.every, text=storm, imagine={"resubmit_if_lost": True})
            )
            victims = kill_order(names, rng)
            while not loading.done() and len(killed) < args.kills:
                await asyncio.sleep(args.interval)
                if loading.done():
                    break
                victim = kill(stack, next(victims))
                killed.append(victim)
                print(f"{time.strftime('%H:%M:%S')} killed {victim.name} (pid {victim.pid})")
                try:
                    seconds = await healed(stack, victim, within=120)
                    print(f"  {victim.name} serves again after {seconds:.1f} s")
                except TimeoutError as exc:
                    print(f"  {exc}")
            await loading
            result = await audit(stack, artist, load, followers, within=300)
    recovered = sorted(k.healed_after for k in killed if k.healed_after is not None)
    print()
    print(f"kills: {len(killed)}, not recovered: {len(killed) - len(recovered)}")
    if recovered:
        print(
            f"recovery (s): median {statistics.median(recovered):.1f}, "
            f"max {recovered[-1]:.1f}; by kind: "
            + ", ".join(
                f"{name} {max(k.healed_after or 0 for k in killed if k.name == name):.1f}"
                for name in sorted({k.name for k in killed})
            )
        )
    print(f"lost webhooks (tasks not completed): {len(result.not_completed)}")
    for task_id, state in result.not_completed.items():
        print(f"  {task_id}: {state}")
    print(f"images missing: {result.images_missing}, stored twice: {result.images_stored_twice}")
    print(f"events applied twice: {result.events_applied_twice}")
    print(f"leaked slots: {result.leaked_slots}")
    print(
        f"SSE: gaps {result.sse_gaps}, duplicates {result.sse_duplicates}, out of order "
        f"{result.sse_out_of_order}, reconnects {result.sse_reconnects}"
    )
    print(f"imagine retries (same Idempotency-Key): {load.retries}, refused: {len(load.refused)}")
    print(result.figures())
    return 0 if result.clean and not load.refused and len(recovered) == len(killed) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the load runs")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between imagines")
    parser.add_argument("--interval", type=float, default=8.0, help="seconds between kills")
    parser.add_argument("--kills", type=int, default=30, help="at most this many kills")
    parser.add_argument("--duplicates", type=int, default=4, help="extra copies per webhook")
    parser.add_argument("--followers", type=int, default=3, help="SSE clients")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--single", action="store_true", help="one NATS node, one replica each")
    args = parser.parse_args()
    shape = ClusterShape() if args.single else CLUSTER
    with tempfile.TemporaryDirectory(prefix="imagetron-chaos-") as root:
        started = time.monotonic()
        with EmbeddedStack(root, StackPorts.free(), extra_env=CHAOS_ENV, shape=shape) as stack:
            ready = time.monotonic() - started
            print(f"stack ready in {ready:.1f} s: {len(stack.processes())} processes")
            return asyncio.run(chaos(stack, args))


if __name__ == "__main__":
    sys.exit(main())
