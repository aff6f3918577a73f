"""`imagetron up` to ready, with its data directory already there (a second start: the
cluster, buckets, streams, secrets and migrations exist).

    uv run python bench/startup.py [--runs 3]

Starts the embedded stack once in a temporary directory (the first start: initdb and the
first migrations, not measured), stops it, then times `imagetron up` on the same directory
from the command until it prints that Imagetron is ready, `--runs` times; each run is
stopped by its PID (SIGTERM: the command stops every process it started) before the next.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import Figure, at_most, machine, table

from imagetron.servers.process import make_preexec
from imagetron.stack import EmbeddedStack, StackPorts

NAME = "imagetron up"
READY = "Imagetron is ready."


@dataclass(frozen=True)
class Size:
    runs: int = 3
    timeout: float = 120.0


SMALL = Size(runs=1, timeout=120.0)


def bytecode_cached() -> bool:
    """Whether the interpreters it starts find their modules compiled (`make bootstrap`
    compiles them): where PYTHONDONTWRITEBYTECODE is set and they are not, every start
    compiles thousands of modules from source, about twice the time to ready."""
    for name in ("sqlalchemy.sql.compiler", "fastapi.routing", "imagetron_gateway.bootstrap"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.cached is None or not Path(spec.cached).exists():
            return False
    return True


def up_command(root: Path, ports: StackPorts) -> list[str]:
    options = [f"--{k.replace('_', '-')}-port={v}" for k, v in asdict(ports).items()]
    return [sys.executable, "-m", "imagetron.cli", "up", f"--data-dir={root}", *options]


def time_up(root: Path, ports: StackPorts, timeout: float) -> tuple[float | None, str]:
    """Seconds from `imagetron up` until it says it is ready (None if it did not within
    `timeout`), and what it printed. The command is stopped by its PID either way."""
    started = time.perf_counter()
    process = subprocess.Popen(
        up_command(root, ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        preexec_fn=make_preexec(signal.SIGTERM),  # ends with the benchmark
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(line.decode(errors="replace")) for line in process.stdout or ()],
        daemon=True,
    )
    reader.start()
    output: list[str] = []
    ready: float | None = None
    deadline = started + timeout
    while ready is None and (left := deadline - time.perf_counter()) > 0:
        try:
            line = lines.get(timeout=min(left, 0.5))
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        output.append(line)
        if READY in line:
            ready = time.perf_counter() - started
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    reader.join(5)
    return ready, "".join(output)


def run(root: Path, size: Size) -> list[Figure]:
    """`root` holds a stack that has started before (or is empty: then it is started and
    stopped once first)."""
    if not (root / "secrets.json").exists():
        with EmbeddedStack(root, StackPorts.free()):
            pass
    times: list[float] = []
    failures = 0
    for _ in range(size.runs):
        seconds, output = time_up(root, StackPorts.free(), size.timeout)
        if seconds is None:
            failures += 1
            print(output[-2000:], file=sys.stderr)
        else:
            times.append(seconds)
    best = min(times) if times else None
    note = (
        f"best of {size.runs}: " + ", ".join(f"{t:.2f}" for t in times) + " s"
        if times
        else "never ready"
    )
    if failures:
        note += f"; {failures} not ready within {size.timeout:.0f} s"
    if not bytecode_cached():
        note += "; bytecode not compiled (`make bootstrap`): every start compiled from source"
    return [
        Figure(
            NAME,
            "`imagetron up` to ready, data directory already there",
            best,
            "s",
            target="≤ 4 s",
            check=at_most(4.0),
            note=note,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=Size.runs)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imagetron-bench-") as root:
        figures = run(Path(root), Size(runs=args.runs))
    print(machine())
    print(table(figures))


if __name__ == "__main__":
    main()
