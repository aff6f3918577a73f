"""The `imagetron` terminal client against the embedded stack: logging in (the key kept
0600), prompts and chats, imagine with live progress from the event stream, follow-ups,
downloads checked against their hashes, the event stream, `--json`, and exit codes that say
what went wrong."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from imagetron.cli import app

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def user_key(stack) -> str:
    admin = {"Authorization": f"Bearer {stack.admin_api_key}"}
    created = httpx.post(
        f"{stack.gateway_url}/api/v1/users", json={"name": "terminal"}, headers=admin
    )
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"])


@pytest.fixture
def run(stack, user_key, tmp_path, monkeypatch):
    """`imagetron …` in this process, as a logged-in user with its own config folder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("IMAGETRON_API_KEY", raising=False)
    monkeypatch.delenv("IMAGETRON_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    invoke("login", "--url", stack.gateway_url, "--key", user_key)
    return invoke


def test_login_keeps_the_key_readable_by_the_user_alone(stack, user_key, run, tmp_path):
    path = tmp_path / "config" / "imagetron" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": stack.gateway_url, "api_key": user_key}

    refused = run("login", "--url", stack.gateway_url, "--key", "itk_wrong", code=3)
    assert "The API key is not valid." in refused.output
    assert json.loads(path.read_text())["api_key"] == user_key  # the good one stays

    assert "Logged out." in run("logout").output
    assert not path.exists()
    assert "Not logged in" in run("prompts", "list", code=3).output
    unreachable = run("prompts", "list", "--url", "http://127.0.0.1:9", "--key", user_key, code=5)
    assert "cannot be reached" in unreachable.output


def test_chat_prompts_and_approval(run):
    chatted = run("chat", "autumn still lifes for stock", "--count", "3")
    subjects = re.findall(r"^\s*\d\. (.+)$", chatted.output, re.M)
    assert len(subjects) == 3
    chat_id = re.search(r"Chat ([0-9a-f-]{36})", chatted.output).group(1)

    written = json.loads(
        run("prompts", "write", subjects[0], "--count", "2", "--chat", chat_id, "--json").output
    )
    assert len(written["prompts"]) == 2
    assert all(p["chat_id"] == chat_id and p["title"] for p in written["prompts"])

    flagged = run("prompts", "add", "a harbour in the style of Greg Rutkowski")
    assert "Greg Rutkowski" in flagged.output  # the stock finding, in its own words
    chosen = written["prompts"][0]["id"]
    assert "Approved" in run("prompts", "approve", chosen).output
    approved = json.loads(run("prompts", "list", "--status", "approved", "--json").output)
    assert [p["id"] for p in approved["items"]] == [chosen]
    listing = run("prompts", "list").output
    assert "harbour" in listing
    assert "findings" in listing

    missing = run("prompts", "approve", str(uuid.uuid4()), code=1)
    assert "does not exist" in missing.output


def test_imagine_waits_with_live_progress_then_upscale_and_download(run, tmp_path):
    rendered = run("imagine", "a pear on a linen cloth", "--ar", "3:2", "--wait")
    lines = rendered.output.splitlines()
    task_id = re.search(r"imagine ([0-9a-f-]{36}): queued", rendered.output).group(1)
    # The progress, step by step, as the provider reported it through the event stream.
    progress = [line for line in lines if line.startswith(f"imagine {task_id}:")]
    assert progress[0].endswith("queued 0%")
    assert f"imagine {task_id}: rendering 30%" in progress
    assert f"imagine {task_id}: rendering 70%" in progress
    assert progress[-1] == f"imagine {task_id}: rendered 100%"
    assert len([line for line in lines if ": stored, " in line]) == 5
    assert "Done: 5 of 5 images stored." in rendered.output

    upscaled = json.loads(run("upscale", task_id, "2", "--wait", "--json").output)
    assert upscaled["task"]["status"] == "completed"
    assert upscaled["task"]["origin_task_id"] == task_id
    [image] = upscaled["images"]
    assert (image["kind"], image["index"], image["is_persisted"]) == ("upscale", 2, True)

    files = json.loads(
        run("download", upscaled["task"]["id"], "--to", str(tmp_path / "out"), "--json").output
    )
    [saved] = files
    data = Path(saved["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == image["sha256"]
    assert data.startswith(b"\x89PNG")

    # What cannot be done says why, with an exit code a script can act on.
    failed = run("imagine", "a pear --sandbox-fail", "--wait", code=4)
    assert "ended failed" in failed.output
    assert "failed to generate image" in failed.output
    not_a_grid = run("upscale", upscaled["task"]["id"], "1", code=1)
    assert "Error:" in not_a_grid.output
    run("upscale", task_id, "5", code=2)  # versions are 1-4: the command line is wrong


def test_events_replays_and_follows_as_json_lines(stack, user_key, run):
    task = json.loads(run("imagine", "a fig on slate", "--wait", "--json").output)["task"]
    env = {
        **os.environ,
        "IMAGETRON_URL": stack.gateway_url,
        "IMAGETRON_API_KEY": user_key,
    }
    follower = subprocess.Popen(
        [sys.executable, "-m", "imagetron.cli", "events", "--json", "--after", "0",
         "--task", task["id"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    seen: list[dict] = []
    try:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(json.loads(line))
            if seen[-1]["type"] == "task.completed":
                break
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    types = [event["type"] for event in seen]
    assert types[0] == "task.created"
    assert "task.progress" in types
    assert types[-1] == "task.completed"
    assert [e["id"] for e in seen] == sorted({e["id"] for e in seen})
    assert {e["data"]["task"]["id"] for e in seen} == {task["id"]}
