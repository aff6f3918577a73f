"""The `imagetron` terminal client against the embedded stack: logging in (the key kept
0600), prompts and chats, imagine with live progress from the event stream, follow-ups,
downloads checked against their hashes, the event stream, `--json`, and exit codes that say
what went wrong."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
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


def _api(stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_json_is_exactly_what_the_api_answered(stack, user_key, run):
    assert "No prompts. Add one" in run("prompts", "list").output
    with _api(stack, user_key) as api:
        me = json.loads(
            run("login", "--url", stack.gateway_url, "--key", user_key, "--json").output
        )
        assert me == api.get("/api/v1/me").json()

        added = json.loads(run("prompts", "add", "a quince on slate", "--json").output)
        assert added == api.get(f"/api/v1/prompts/{added['id']}").json()
        approved = json.loads(run("prompts", "approve", added["id"], "--json").output)
        assert approved["status"] == "approved"
        assert approved == api.get(f"/api/v1/prompts/{added['id']}").json()

        chat = json.loads(run("chat", "still lifes with quinces", "--count", "2", "--json").output)
        assert chat == api.get(f"/api/v1/chats/{chat['id']}").json()
        refined = run("chat", "--chat", chat["id"], "only on slate", "--count", "2").output
        assert len(re.findall(r"^\s*\d\. ", refined, re.M)) == 2
        assert len(api.get(f"/api/v1/chats/{chat['id']}").json()["messages"]) == 4
        written = run("prompts", "write", "a quince", "--count", "2", "--chat", chat["id"]).output
        assert len(re.findall(r"^[0-9a-f-]{36}  new ", written, re.M)) == 2

        done = json.loads(run("imagine", "--prompt", added["id"], "--wait", "--json").output)
        task_id = done["task"]["id"]
        assert done["task"] == api.get(f"/api/v1/tasks/{task_id}").json()
        listed = api.get("/api/v1/images", params={"task_id": task_id}).json()["items"]
        assert sorted(done["images"], key=lambda i: i["id"]) == sorted(
            listed, key=lambda i: i["id"]
        )

        queued = json.loads(run("reroll", task_id, "--json").output)
        assert queued["origin_task_id"] == task_id
        assert queued["command"] == "reroll"


def test_what_cannot_be_done_says_why(stack, user_key, run, tmp_path):
    unknown = str(uuid.uuid4())
    assert (
        "Prompt " + unknown + " does not exist."
        in run("imagine", "--prompt", unknown, code=1).output
    )
    assert f"There is no task {unknown}." in run("cancel", unknown, code=1).output
    assert f"There is no task {unknown}." in run("reroll", unknown, "--wait", code=1).output
    # Not "no images (yet)" with exit 0, as before: a mistyped id is an error.
    out = tmp_path / "none"
    assert (
        f"There is no task {unknown}." in run("download", unknown, "--to", str(out), code=1).output
    )
    assert not out.exists()

    run("imagine", code=2)  # neither a text nor --prompt
    run("imagine", "a pear", "--prompt", unknown, code=2)

    wrong = ("--key", "itk_wrong")
    assert "The API key is not valid." in run("prompts", "list", *wrong, code=3).output
    assert "The API key is not valid." in run("imagine", "a pear", "--wait", *wrong, code=3).output
    with _api(stack, user_key) as api:
        assert api.get("/api/v1/prompts").json()["items"] == []  # nothing was started


def test_an_unreachable_imagetron_is_said_at_once(stack, user_key, run):
    down = ("--url", "http://127.0.0.1:9", "--key", user_key)
    # Before: `--wait` retried for its whole --timeout (600 s), `events` for ever.
    waited = run("imagine", "a pear", "--wait", *down, code=5)
    assert "cannot be reached at http://127.0.0.1:9" in waited.output
    followed = run("events", *down, code=5)
    assert "cannot be reached at http://127.0.0.1:9" in followed.output


def test_the_stored_key_goes_only_to_its_own_url(stack, user_key, run, tmp_path, monkeypatch):
    # Before: `--url` elsewhere sent the key stored for another Imagetron there.
    refused = run("prompts", "list", "--url", "http://127.0.0.1:9", code=3)
    assert "Not logged in to http://127.0.0.1:9" in refused.output
    run("prompts", "list", "--url", stack.gateway_url + "/")  # the same Imagetron

    credentials = tmp_path / "config" / "imagetron" / "credentials.json"
    credentials.write_text("{not json")
    unreadable = run("prompts", "list", code=3)
    assert f"{credentials} is unreadable" in unreadable.output
    # A key and a URL given need nothing stored (an unreadable file was a usage error before).
    monkeypatch.setenv("IMAGETRON_URL", stack.gateway_url)
    monkeypatch.setenv("IMAGETRON_API_KEY", user_key)
    assert "No prompts" in run("prompts", "list").output
    assert "Logged out." in run("logout").output
    assert "Not logged in." in run("logout").output


def test_wait_gives_up_after_its_timeout(run):
    gave_up = run("imagine", "a pear --sandbox-stuck", "--wait", "--timeout", "2", code=5)
    assert "Gave up after 2 s: the task is still going." in gave_up.output
    assert "rendering" in gave_up.output  # it was followed until then


def test_a_queued_task_is_cancelled_and_its_wait_ends_with_code_4(stack, user_key, run):
    env = {**os.environ, "IMAGETRON_URL": stack.gateway_url, "IMAGETRON_API_KEY": user_key}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "imagetron.cli", "imagine", "a quince --sandbox-queue-delay=20000",
         "--wait", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert waiting.stdout is not None
        first = waiting.stdout.readline()
        task_id = re.search(r"imagine ([0-9a-f-]{36}): queued", first).group(1)
        assert f"imagine {task_id}: cancelled" in run("cancel", task_id).output
        rest, errors = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 4, errors
    assert f"imagine {task_id}: cancelled 0%" in rest
    assert "The imagine ended cancelled." in rest
    again = run("cancel", task_id, "--json", code=1)
    assert "Error:" in again.output


def test_follow_ups_and_downloads_of_what_was_stored_and_what_was_not(run, tmp_path):
    grid = json.loads(run("imagine", "a pear on linen", "--wait", "--json").output)["task"]
    varied = run("vary", grid["id"], "3", "--subtle", "--wait").output
    assert "Done: 5 of 5 images stored." in varied
    rerolled = json.loads(run("reroll", grid["id"], "--wait", "--json").output)
    assert rerolled["task"]["origin_task_id"] == grid["id"]
    assert len(rerolled["images"]) == 5

    to = tmp_path / "renders"
    listed = run("download", grid["id"], "--to", str(to), "--kind", "version").output
    names = sorted(p.name for p in to.iterdir())
    assert names == [f"{grid['id'][:8]}-version-{i}.png" for i in range(1, 5)]
    assert listed.count(": stored, ") == 4
    first = {p.name: p.read_bytes() for p in to.iterdir()}
    run("download", grid["id"], "--to", str(to), "--kind", "version")  # again: same files
    assert {p.name: p.read_bytes() for p in to.iterdir()} == first

    broken = run("imagine", "a pear --sandbox-not-image", "--wait", code=4).output
    assert broken.count("NOT stored: The data is not a PNG, JPEG or WebP image.") == 5
    assert "Not done: 0 of 5 images stored (why, above)." in broken
    assert "Done:" not in broken
    assert "Download:" not in broken  # nothing to download
    broken_id = re.search(r"imagine ([0-9a-f-]{36}): queued", broken).group(1)
    none = run("download", broken_id, "--to", str(tmp_path / "broken"), code=4)
    assert none.output.count("NOT stored") == 5
    assert list((tmp_path / "broken").iterdir()) == []


def test_in_a_terminal_wait_draws_a_progress_bar(run, monkeypatch):
    import io

    from rich.console import Console

    from imagetron.client import commands

    screen = io.StringIO()
    monkeypatch.setattr(commands, "err", Console(file=screen, force_terminal=True, width=120))
    done = run("imagine", "a fig on slate", "--wait")
    drawn = screen.getvalue()
    assert "\x1b[" in drawn  # drawn, not printed line by line
    assert "imagine" in drawn
    assert "100%" in drawn
    assert "rendered" in drawn
    assert drawn.count(": stored, ") == 5  # printed above the bar
    assert "Done: 5 of 5 images stored." in done.output
    assert ": rendering 30%" not in done.output  # no plain lines as well


def test_events_prints_what_arrives_and_stops_on_ctrl_c(stack, user_key, run):
    task = json.loads(run("imagine", "a plum on linen", "--wait", "--json").output)["task"]
    env = {**os.environ, "IMAGETRON_URL": stack.gateway_url, "IMAGETRON_API_KEY": user_key}
    follower = subprocess.Popen(
        [sys.executable, "-m", "imagetron.cli", "events", "--after", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    watchdog = threading.Timer(30, follower.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(line.rstrip("\n"))
            if sum("image.persisted" in seen for seen in lines) == 5:
                break
        follower.send_signal(signal.SIGINT)
        _, errors = follower.communicate(timeout=10)
    finally:
        watchdog.cancel()
        follower.kill()
    assert follower.returncode == 0, errors
    assert "Traceback" not in errors
    by_type = {line.split()[1]: line for line in lines}
    assert re.search(r"prompt [0-9a-f-]{36}", by_type["prompt.created"]), lines
    assert f"imagine {task['id']} completed 100%" in by_type["task.completed"]
    assert re.search(r"(grid|version \d): stored, \d+x\d+, \d+ bytes", by_type["image.persisted"])
