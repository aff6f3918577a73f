"""The terminal client's POSTs carry an Idempotency-Key and are sent again, with the same key,
while they have no answer; anything the API answered is final."""

from __future__ import annotations

import httpx
import pytest

from imagetron.client import api as client_api
from imagetron.client.api import Api, ApiProblem, ClientError, ExitCode

PROBLEM = {"content-type": "application/problem+json"}


def _api(answers: list[httpx.Response | Exception], seen: list[httpx.Request]) -> Api:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Api("http://imagetron.test", "itk_key", transport=httpx.MockTransport(handle))


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(client_api.time, "sleep", slept.append)
    return slept


def test_a_timed_out_post_is_sent_again_with_the_same_key(waits):
    seen: list[httpx.Request] = []
    api = _api([httpx.ReadTimeout("slow"), httpx.Response(201, json={"id": "p1"})], seen)
    assert api.post("/api/v1/prompts", {"text": "a fox"}) == {"id": "p1"}
    keys = [r.headers["idempotency-key"] for r in seen]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert seen[0].content == seen[1].content
    assert waits == [1.0]


def test_504_then_409_in_progress_then_the_first_answer(waits):
    seen: list[httpx.Request] = []
    api = _api(
        [
            httpx.Response(504, json={"detail": "no answer in time"}, headers=PROBLEM),
            httpx.Response(409, json={"detail": "still answering"}, headers={"Retry-After": "2"}),
            httpx.Response(202, json={"id": "t1"}),
        ],
        seen,
    )
    assert api.post("/api/v1/prompts/p1/imagine", {}) == {"id": "t1"}
    assert len({r.headers["idempotency-key"] for r in seen}) == 1
    assert waits == [1.0, 2.0]


def test_every_post_has_a_key_of_its_own():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(201, json={}), httpx.Response(201, json={})], seen)
    api.post("/api/v1/prompts", {"text": "one"})
    api.post("/api/v1/prompts", {"text": "two"})
    assert seen[0].headers["idempotency-key"] != seen[1].headers["idempotency-key"]


@pytest.mark.parametrize(
    ("status", "headers"),
    [(409, {}), (422, {}), (429, {"Retry-After": "60"}), (404, {}), (401, {})],
)
def test_an_answer_is_final(status, headers, waits):
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(status, json={"detail": "no"}, headers=headers)], seen)
    with pytest.raises(ApiProblem) as refused:
        api.post("/api/v1/prompts", {"text": "x"})
    assert refused.value.status == status
    assert len(seen) == 1
    assert waits == []


def test_it_gives_up_after_three_attempts(waits):
    seen: list[httpx.Request] = []
    api = _api([httpx.ConnectError("down")] * 3, seen)
    with pytest.raises(ClientError) as failed:
        api.post("/api/v1/prompts", {"text": "x"})
    assert failed.value.code is ExitCode.UNAVAILABLE
    assert len(seen) == 3
    assert waits == [1.0, 2.0]


def test_a_long_retry_after_is_bounded(waits):
    seen: list[httpx.Request] = []
    api = _api(
        [
            httpx.Response(503, json={}, headers={"Retry-After": "3600"}),
            httpx.Response(201, json={"id": "p"}),
        ],
        seen,
    )
    assert api.post("/api/v1/prompts", {"text": "x"}) == {"id": "p"}
    assert waits == [client_api.POST_RETRY_WAIT_MAX]
