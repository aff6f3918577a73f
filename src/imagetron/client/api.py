"""The public REST API and event stream, as the terminal client calls them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse


class ExitCode(IntEnum):
    """What `imagetron`'s client commands exit with (docs/terminal.md)."""

    OK = 0
    #: The API refused the request (422, 404, 409, …): its `detail` says why.
    REFUSED = 1
    #: The command line itself was wrong (click's own code).
    USAGE = 2
    #: No credentials, or the API key is not (or no longer) valid.
    NOT_SIGNED_IN = 3
    #: The work ended without its result: the task failed or was cancelled, or an image
    #: could not be stored.
    NOT_DONE = 4
    #: Imagetron could not be reached, was unavailable or too slow (5xx, 429, timeouts).
    UNAVAILABLE = 5


class ClientError(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


class ApiProblem(ClientError):
    """An RFC 9457 problem document from the API."""

    def __init__(
        self, status: int, title: str, detail: str, retry_after: float | None = None
    ) -> None:
        super().__init__(detail or title, _code_of(status))
        self.status = status
        self.title = title
        self.detail = detail
        self.retry_after = retry_after


def _code_of(status: int) -> ExitCode:
    if status in (401, 403):
        return ExitCode.NOT_SIGNED_IN
    if status == 429 or status >= 500:
        return ExitCode.UNAVAILABLE
    return ExitCode.REFUSED


def problem_of(response: httpx.Response) -> ApiProblem:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or f"Imagetron answered {response.status_code}.")
    title = str(body.get("title") or response.reason_phrase)
    try:
        retry_after: float | None = float(response.headers["retry-after"])
    except (KeyError, ValueError):
        retry_after = None
    return ApiProblem(response.status_code, title, detail, retry_after)


#: A POST without an answer (unreachable, too slow, 502/503/504, or 409 while its first
#: sending is still being answered) is sent again with the same `Idempotency-Key`, so it is
#: done once however often it is sent: this many times in all, waiting at most this long.
POST_ATTEMPTS = 3
POST_RETRY_WAIT_MAX = 10.0


def _retry_wait(error: ClientError, attempt: int) -> float | None:
    """How long to wait before sending a POST again after `error`; None: do not."""
    if isinstance(error, ApiProblem):
        in_progress = error.status == 409 and error.retry_after is not None
        if error.status not in (502, 503, 504) and not in_progress:
            return None
        wait = error.retry_after if error.retry_after is not None else float(attempt)
    elif error.code is ExitCode.UNAVAILABLE:  # unreachable or too slow
        wait = float(attempt)
    else:
        return None
    return min(wait, POST_RETRY_WAIT_MAX)


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    data: dict[str, Any]


#: Reconnection delays of the event stream (seconds), the last one repeated.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)


class Api:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 130.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        # Calls that wait for the language model may take up to the gateway's LLM timeout.
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method,
                path,
                json=body,
                params=query or None,
                headers={**_json_header(body), **(headers or {})},
            )
        except httpx.TransportError as exc:
            raise self._no_answer(exc) from exc
        if response.status_code >= 400:
            raise problem_of(response)
        return None if response.status_code == 204 else response.json()

    def _no_answer(self, exc: httpx.TransportError) -> ClientError:
        if isinstance(exc, httpx.TimeoutException):
            return ClientError(f"Imagetron did not answer in time ({exc!r}).", ExitCode.UNAVAILABLE)
        return ClientError(
            f"Imagetron cannot be reached at {self.url} ({exc}). Is it running?",
            ExitCode.UNAVAILABLE,
        )

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        """POST with an `Idempotency-Key` of its own, sent again (same key) while it has no
        answer: a prompt or a task is created once, not once per attempt."""
        key = {"Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(1, POST_ATTEMPTS):
            try:
                return self.call("POST", path, body=body, headers=key)
            except ClientError as exc:
                wait = _retry_wait(exc, attempt)
                if wait is None:
                    raise
            time.sleep(wait)
        return self.call("POST", path, body=body, headers=key)

    def put(self, path: str, body: Any) -> Any:
        return self.call("PUT", path, body=body)

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, page after page."""
        cursor = None
        while True:
            page = self.get(path, **params, cursor=cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def download(self, path: str, write: Callable[[bytes], None]) -> None:
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise problem_of(response)
                for chunk in response.iter_bytes():
                    write(chunk)
        except httpx.TransportError as exc:
            raise ClientError(
                f"The download of {path} broke off: {exc}", ExitCode.UNAVAILABLE
            ) from exc

    def events(
        self,
        *,
        params: Mapping[str, str] | None = None,
        after: int | None = None,
        on_connected: Callable[[], None] | None = None,
        on_reconnecting: Callable[[str], None] | None = None,
        deadline: float | None = None,
    ) -> Iterator[Event]:
        """The caller's events, for ever (or until `deadline`, a `time.monotonic()` value:
        then it ends, heartbeats or not).

        When the stream drops or Imagetron is briefly unavailable, it reconnects by itself
        with `Last-Event-ID`, so every event arrives once, in order. An Imagetron that cannot
        be reached at all before the first connection is an error, not a drop. `on_connected`
        runs once, as soon as the first connection is established (nothing after that moment
        can be missed)."""
        last = after
        attempt = 0
        connected = False
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                with connect_sse(
                    self._http,
                    "GET",
                    "/api/v1/events",
                    params=dict(params or {}),
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=_read_timeout(deadline)),
                ) as source:
                    if source.response.status_code != 200:
                        source.response.read()
                        problem = problem_of(source.response)
                        if problem.code is not ExitCode.UNAVAILABLE:
                            raise problem
                        raise _Retry(problem.detail)
                    attempt = 0
                    connected = True
                    if on_connected is not None:
                        on_connected()
                        on_connected = None
                    if deadline is not None:
                        # Heartbeats keep a quiet stream from ever timing out: the deadline
                        # is checked at every chunk that arrives, heartbeats included.
                        source.response.stream = _Until(source.response.stream, deadline)
                    for sse in source.iter_sse():
                        if not sse.id or not sse.event or sse.event == "message":
                            continue
                        last = int(sse.id)
                        yield Event(last, sse.event, json.loads(sse.data) if sse.data else {})
                    raise _Retry("the event stream ended")
            except _DeadlinePassed:
                return
            except httpx.TransportError as exc:
                if not connected:
                    raise self._no_answer(exc) from exc
                reason = str(exc) or type(exc).__name__
            except (_Retry, SSEError) as exc:
                reason = str(exc) or type(exc).__name__
            if deadline is not None and time.monotonic() > deadline:
                return
            if on_reconnecting is not None:
                on_reconnecting(reason)
            time.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1


class _Retry(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


class _Until(httpx.SyncByteStream):
    """A response body that ends the stream (`_DeadlinePassed`) once `deadline` has passed."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, deadline: float
    ) -> None:
        assert isinstance(stream, httpx.SyncByteStream)  # the client is synchronous
        self._stream = stream
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise _DeadlinePassed
            yield chunk

    def close(self) -> None:
        self._stream.close()


def _json_header(body: Any) -> dict[str, str]:
    return {"Content-Type": "application/json"} if body is not None else {}


def _read_timeout(deadline: float | None) -> float:
    # Heartbeats come every ~15 s: a minute of silence means the connection is dead.
    left = 60.0 if deadline is None else deadline - time.monotonic()
    return max(1.0, min(60.0, left))
