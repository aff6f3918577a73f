"""`make bench`: every benchmark against the embedded stack, and one table of the figures,
their targets, the bare references measured in the same run, and the machine.

    uv run python bench/run.py [--quick] [--only webhooks,pipeline,...] [--out table.md]

In order: the SSE fan-out of one notifier alone (its own NATS); then one embedded stack
(temporary directory, free ports on 127.0.0.1, `common.BENCH_ENV`) with a bare FastAPI
endpoint beside it, for the bare-NATS reference, webhooks, the pipeline, the SSE fan-out
through the gateway, publication and (with chromium) the studio; then, the stack stopped,
`imagetron up` on its data directory. Each benchmark is bounded in time; one that fails or
overruns leaves a row saying so (and the exit status 1), the others still run. `--quick`
runs each on a small size (what the test suite does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pipeline
import publish
import sse_fanout
import startup
import studio
import webhooks
from common import (
    Figure,
    bare_fastapi,
    bare_nats,
    bench_stack,
    machine,
    raise_open_file_limit,
    table,
)

from imagetron.stack import EmbeddedStack
from imagetron.testing import chromium_or_reason

BENCHMARKS = ("sse", "webhooks", "pipeline", "publish", "studio", "startup")


class Run:
    """The figures gathered so far, and which benchmarks failed."""

    def __init__(self, only: set[str]) -> None:
        self.only = only
        self.figures: list[Figure] = []
        self.failed: list[str] = []

    def wanted(self, name: str) -> bool:
        return name in self.only

    @contextlib.contextmanager
    def benchmark(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        print(f"… {name}", file=sys.stderr, flush=True)
        try:
            yield
        except Exception as exc:
            traceback.print_exc()
            self.failed.append(name)
            reason = "overran its time limit" if isinstance(exc, TimeoutError) else repr(exc)
            self.figures.append(Figure(name, "did not finish", None, "", note=reason[:200]))
        print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    async def bounded(
        self, name: str, seconds: float, measure: Callable[[], Awaitable[list[Figure]]]
    ) -> None:
        with self.benchmark(name):
            async with asyncio.timeout(seconds):
                self.figures += await measure()


async def on_the_stack(run: Run, stack: EmbeddedStack, bare_port: int, quick: bool) -> None:
    sizes = {
        "webhooks": webhooks.SMALL if quick else webhooks.Size(),
        "pipeline": pipeline.SMALL if quick else pipeline.Size(),
        "sse": sse_fanout.SMALL if quick else sse_fanout.Size(),
        "publish": publish.SMALL if quick else publish.Size(),
    }
    nats_ref = None
    with run.benchmark("bare NATS"):
        async with asyncio.timeout(60):
            nats_ref = await bare_nats(
                stack.nats_connect_options(), 300 if quick else 5000, 64, 20 if quick else 200
            )
        run.figures.append(
            Figure(
                "bare references",
                "NATS JetStream: publishes acknowledged, 64 in flight",
                nats_ref.publish_rate,
                "/s",
                better="higher",
                note=f"one publish to its ack p50 {nats_ref.publish_p50 * 1000:.2f} ms; "
                f"publish to a push consumer p50 {nats_ref.delivery_p50 * 1000:.2f} ms, "
                f"p99 {nats_ref.delivery_p99 * 1000:.2f} ms",
            )
        )
    if run.wanted("webhooks") and nats_ref is not None:
        reference, size = nats_ref, sizes["webhooks"]
        await run.bounded(
            "webhooks",
            120 if quick else 600,
            lambda: webhooks.run(stack, bare_port, reference, size),
        )
    if run.wanted("pipeline"):
        await run.bounded(
            "pipeline", 60 if quick else 300, lambda: pipeline.run(stack, sizes["pipeline"])
        )
    if run.wanted("sse"):
        direct = sse_fanout.direct_p99(run.figures)
        size = sizes["sse"]
        await run.bounded(
            "SSE through the gateway",
            size.timeout * 4,
            lambda: sse_fanout.through_gateway(stack, size, direct),
        )
    if run.wanted("publish"):
        await run.bounded(
            "publish", 60 if quick else 600, lambda: publish.figures(stack, sizes["publish"])
        )
    if run.wanted("studio"):
        chromium, reason = chromium_or_reason()
        if chromium is None:
            run.figures.append(Figure("studio", "skipped", None, "", note=str(reason)))
        else:
            await run.bounded(
                "studio", 180, lambda: studio.figures(stack.gateway_url, stack.admin_api_key)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark on a small size")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args()
    run = Run(set(args.only.split(",")))
    started = time.perf_counter()
    raise_open_file_limit()  # before any server starts: they inherit it

    if run.wanted("sse"):
        with run.benchmark("SSE, one notifier"):
            run.figures += sse_fanout.run_direct(
                sse_fanout.SMALL if args.quick else sse_fanout.Size()
            )

    root = Path(tempfile.mkdtemp(prefix="imagetron-bench-"))
    try:
        with bench_stack(root) as stack, bare_fastapi() as bare_port:
            asyncio.run(on_the_stack(run, stack, bare_port, args.quick))
        if run.wanted("startup"):
            with run.benchmark("startup"):
                run.figures += startup.run(root, startup.SMALL if args.quick else startup.Size())
    finally:
        shutil.rmtree(root, ignore_errors=True)

    report = (
        f"{machine()}; {time.perf_counter() - started:.0f} s in all"
        f"{' (--quick sizes)' if args.quick else ''}\n\n{table(run.figures)}\n"
    )
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    if run.failed:
        print(f"did not finish: {', '.join(run.failed)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    with contextlib.suppress(ImportError):  # a cheaper loop for the clients, as for servers
        import uvloop

        uvloop.install()
    main()
