"""`imagetron up` as a person runs it: one command, a ready stack, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict

import httpx
import psutil
import pytest

from imagetron.stack import StackPorts

pytestmark = pytest.mark.e2e


def _options(ports: StackPorts) -> list[str]:
    return [f"--{k.replace('_', '-')}-port={v}" for k, v in asdict(ports).items()]


def _start(data_dir, ports, env=None) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagetron.cli", "up", f"--data-dir={data_dir}", *_options(ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C to stop." in line:
            return proc, lines
    proc.kill()
    pytest.fail("imagetron up did not become ready:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    family = psutil.Process(proc.pid).children(recursive=True)
    assert family, "the stack should have child processes"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    _gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"orphans left behind: {alive}"
    return proc.returncode, out


def _key(lines: list[str]) -> str:
    return next(line.split()[-1] for line in lines if "API key:" in line)


def test_up_serves_the_api_stops_cleanly_and_reuses_its_data(tmp_path):
    ports = StackPorts.free()
    proc, lines = _start(tmp_path, ports)
    key = _key(lines)
    gateway = f"http://127.0.0.1:{ports.gateway}"
    me = httpx.get(f"{gateway}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    admin = me.json()
    assert admin["is_admin"] is True
    for port in (ports.gateway, ports.prompts, ports.images, ports.notifier, ports.sandbox):
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    code, out = _stop(proc)
    assert code == 0, out
    assert "Stopped." in out

    again, lines = _start(tmp_path, ports)
    try:
        assert _key(lines) == key
        me = httpx.get(f"{gateway}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.json()["id"] == admin["id"], "the second start must reuse the data"
    finally:
        code, out = _stop(again)
    assert code == 0, out


def test_bootstrap_key_from_the_environment(tmp_path):
    ports = StackPorts.free()
    proc, lines = _start(tmp_path, ports, {"IMAGETRON_BOOTSTRAP_API_KEY": "itk_chosen-by-me"})
    try:
        assert _key(lines) == "itk_chosen-by-me"
        me = httpx.get(
            f"http://127.0.0.1:{ports.gateway}/api/v1/me",
            headers={"Authorization": "Bearer itk_chosen-by-me"},
        )
        assert me.status_code == 200
    finally:
        _stop(proc)


def test_a_taken_port_is_a_clear_error_and_nothing_starts(tmp_path):
    ports = StackPorts.free()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.notifier))
        taken.listen()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "imagetron.cli",
                "up",
                f"--data-dir={tmp_path}",
                *_options(ports),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {ports.notifier}" in result.stderr
    assert "--notifier-port" in result.stderr
    assert not (tmp_path / "postgres").exists(), "nothing should have been started"
