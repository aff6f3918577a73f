"""The stand-in agency's SFTP host key: made once, kept, and its public key (what the
publisher's known_hosts line holds) read at later starts without asyncssh, as long as the
key file is the one it was derived from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncssh

from imagetron.stack import agency_host_key


def _public_of(path: Path) -> str:
    return asyncssh.read_private_key(path).export_public_key().decode().strip()


def test_a_later_start_reads_the_public_key_without_asyncssh(tmp_path: Path) -> None:
    key, line = agency_host_key(tmp_path / "sandbox", 2222)
    assert line == f"[127.0.0.1]:2222 {_public_of(key)}"
    later = f"""
import json, sys
from pathlib import Path
from imagetron.stack import agency_host_key
key, line = agency_host_key(Path({str(tmp_path / "sandbox")!r}), 2223)
print(json.dumps([line, "asyncssh" in sys.modules]))
"""
    result = subprocess.run(
        [sys.executable, "-c", later], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [f"[127.0.0.1]:2223 {_public_of(key)}", False]


def test_a_key_replaced_by_hand_is_read_again(tmp_path: Path) -> None:
    key, first = agency_host_key(tmp_path / "sandbox", 2222)
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(key)
    _, again = agency_host_key(tmp_path / "sandbox", 2222)
    assert again != first
    assert again == f"[127.0.0.1]:2222 {_public_of(key)}"


def test_an_unreadable_record_of_it_is_made_again(tmp_path: Path) -> None:
    key, first = agency_host_key(tmp_path / "sandbox", 2222)
    record = key.with_name("agency_host_key.pub.json")
    record.write_text("{not json")
    assert agency_host_key(tmp_path / "sandbox", 2222) == (key, first)
    assert json.loads(record.read_text())["public_key"] == _public_of(key)
