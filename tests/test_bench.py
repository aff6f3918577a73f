"""`make bench` runs: every benchmark on a small size (`bench/run.py --quick`) against its own
embedded stack, stopping by itself, and prints one table with a measured figure for each.
The figures themselves are not checked here: benchmarks are not timed tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imagetron.testing import chromium_or_reason

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).parent.parent / "bench"


def test_every_benchmark_runs_on_a_small_size_and_prints_one_table(tmp_path):
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,  # each benchmark is bounded; a loaded machine is slow
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = out.read_text()
    assert " GiB RAM, " in report.splitlines()[0]  # the machine it ran on
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| ")][1:]
    measured = {(row[0].lstrip("| "), row[1]): row[2] for row in rows}
    expected = {
        "SSE fan-out": ["clients connected, one notifier", "notifier RSS, all connected",
                        "clients connected, through the gateway"],
        "bare references": ["NATS JetStream: publishes acknowledged, 64 in flight"],
        "webhooks": ["accept latency p99", "webhook → task.completed on SSE, p50",
                     "webhook → task.completed on SSE, p50, nothing else running"],
        "pipeline": ["images stored", "CPU per task, Imagetron's processes"],
        "publish": ["upload throughput"],
        "imagetron up": ["`imagetron up` to ready, data directory already there"],
    }  # fmt: skip
    if chromium_or_reason()[0] is not None:
        expected["studio"] = ["first screen interactive, cold cache"]
    for benchmark, figures in expected.items():
        for figure in figures:
            assert not measured[(benchmark, figure)].startswith("—"), (benchmark, figure)
    # Where a latency comes from: the cores each process kept busy meanwhile.
    assert " cores busy (" in measured[("webhooks", "webhook → task.completed on SSE, p99")]
    sse_p99 = next(row for row in rows if row[1].startswith("delivery p99, one notifier"))
    assert " cores busy (" in sse_p99[2]
    # The bare references are in the same table, as ratios.
    webhook_rate = next(row for row in rows if row[1].startswith("verified webhooks accepted"))
    assert "bare FastAPI" in webhook_rate[5]
    assert float(webhook_rate[6]) > 0
