"""What the terminal client does with answers the embedded stack cannot be made to give on
demand: a 429 with Retry-After, a 5xx that is not JSON, a download that arrives damaged, and
an event stream that only ever sends heartbeats. A stub HTTP server on 127.0.0.1 answers
them; the client is the real one, run as `imagetron …`."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagetron.cli import app
from imagetron.client.api import Api, ExitCode

TASK = "7b20ceb8-0000-4000-8000-000000000001"
PROBLEM = "application/problem+json"


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: An event stream: this many heartbeat comments, `beat` seconds apart.
    heartbeats: int = 0
    beat: float = 0.1


@dataclass
class Stub:
    url: str
    answers: dict[str, Answer] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    #: Event streams, one per connection to /api/v1/events, and the Last-Event-ID of each.
    streams: list[bytes] = field(default_factory=list)
    last_event_ids: list[str | None] = field(default_factory=list)


def _problem(status: int, detail: str, **headers: str) -> Answer:
    body = json.dumps({"title": "No", "status": status, "detail": detail}).encode()
    return Answer(status, body, {"Content-Type": PROBLEM, **headers})


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def _answer(self) -> None:
            path = self.path.split("?")[0]
            state.requests.append(f"{self.command} {path}")
            if path == "/api/v1/events" and state.streams:
                state.last_event_ids.append(self.headers.get("Last-Event-ID"))
                answer = Answer(200, state.streams.pop(0), {"Content-Type": "text/event-stream"})
            else:
                answer = state.answers.get(path) or _problem(404, f"No route {path} here.")
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.heartbeats:
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(answer.heartbeats):
                    self.wfile.write(b": heartbeat\n\n")
                    self.wfile.flush()
                    time.sleep(answer.beat)
                return
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def imagetron(stub: Stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("IMAGETRON_URL", stub.url)
    monkeypatch.setenv("IMAGETRON_API_KEY", "itk_stub")

    def invoke(*args: str, code: int):
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


def test_a_429_says_when_to_retry_and_is_not_sent_again(stub, imagetron):
    detail = "Too many requests (600 per 60 s per key); retry in 17 s."
    stub.answers["/api/v1/prompts"] = _problem(429, detail, **{"Retry-After": "17"})
    listed = imagetron("prompts", "list", code=ExitCode.UNAVAILABLE)
    assert f"Error: {detail}" in listed.output
    added = imagetron("prompts", "add", "a fig", code=ExitCode.UNAVAILABLE)
    assert detail in added.output
    assert stub.requests == ["GET /api/v1/prompts", "POST /api/v1/prompts"]


def test_a_server_error_without_a_problem_document_still_says_what_happened(stub, imagetron):
    stub.answers["/api/v1/prompts"] = Answer(
        500, b"<html>oops</html>", {"Content-Type": "text/html"}
    )
    failed = imagetron("prompts", "list", code=ExitCode.UNAVAILABLE)
    assert "Imagetron answered 500." in failed.output


def test_a_damaged_download_is_not_kept(stub, imagetron, tmp_path):
    content = b"\x89PNG not quite"
    image = {
        "id": "i1", "task_id": TASK, "kind": "upscale", "index": 1, "is_persisted": True,
        "content_type": "image/png", "sha256": hashlib.sha256(b"other bytes").hexdigest(),
        "width": 1, "height": 1, "bytes": len(content), "error": None,
    }  # fmt: skip
    stub.answers[f"/api/v1/tasks/{TASK}"] = Answer(200, json.dumps({"id": TASK}).encode())
    page = {"items": [image], "next_cursor": None}
    stub.answers["/api/v1/images"] = Answer(200, json.dumps(page).encode())
    stub.answers["/api/v1/images/i1/content"] = Answer(200, content, {"Content-Type": "image/png"})
    to = tmp_path / "out"
    damaged = imagetron("download", TASK, "--to", str(to), code=ExitCode.UNAVAILABLE)
    assert "arrived damaged (its SHA-256 differs); try again." in damaged.output
    assert list(to.iterdir()) == []  # neither the file nor its .part


def test_a_missing_image_content_is_the_apis_detail(stub, imagetron, tmp_path):
    image = {
        "id": "i2", "task_id": TASK, "kind": "grid", "index": 0, "is_persisted": True,
        "content_type": "image/png", "sha256": None, "width": 1, "height": 1, "bytes": 1,
    }  # fmt: skip
    stub.answers[f"/api/v1/tasks/{TASK}"] = Answer(200, json.dumps({"id": TASK}).encode())
    page = {"items": [image], "next_cursor": None}
    stub.answers["/api/v1/images"] = Answer(200, json.dumps(page).encode())
    stub.answers["/api/v1/images/i2/content"] = _problem(404, "Image i2 is not stored.")
    gone = imagetron("download", TASK, "--to", str(tmp_path), code=ExitCode.REFUSED)
    assert "Image i2 is not stored." in gone.output


def test_the_event_stream_ends_at_its_deadline_though_heartbeats_keep_coming(stub):
    # The notifier sends a heartbeat every 15 s: a read timeout never fires, so `--wait
    # --timeout 20` on a task that stays quiet waited for ever.
    stub.answers["/api/v1/events"] = Answer(200, heartbeats=100, beat=0.1)
    started = time.monotonic()
    with Api(stub.url, "itk_stub") as api:
        assert list(api.events(deadline=started + 1.0)) == []
    assert time.monotonic() - started < 3.0


def test_a_dropped_event_stream_resumes_after_the_last_event_it_delivered(stub):
    def frame(seq: int, kind: str) -> bytes:
        task = {"id": TASK, "command": "imagine", "status": kind, "progress": seq}
        return f"id: {seq}\nevent: task.{kind}\ndata: {json.dumps({'task': task})}\n\n".encode()

    stub.streams = [frame(7, "progress"), b": heartbeat\n\n" + frame(8, "completed")]
    reasons: list[str] = []
    with Api(stub.url, "itk_stub") as api:
        events = api.events(after=3, on_reconnecting=reasons.append)
        got = [next(events), next(events)]
    assert [(e.id, e.type) for e in got] == [(7, "task.progress"), (8, "task.completed")]
    assert got[1].data["task"]["status"] == "completed"
    assert stub.last_event_ids == ["3", "7"]  # nothing missed, nothing twice
    assert reasons == ["the event stream ended"]
