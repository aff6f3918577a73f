"""Responses that misbehave on purpose: slow, cut, oversized, or not an image at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from imagetron_sandbox.faults.knobs import FaultKnobs

NOT_AN_IMAGE = (
    b"<!DOCTYPE html><html><head><title>Bad gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>imagetron-sandbox: this is not a PNG.</p></body></html>"
)
_CHUNK = 64 * 1024
_TRICKLE_SLICES = 20


class FaultyBody(Response):
    """Streams ``body`` padded with zero bytes to ``total``, maybe slowly, maybe cut short."""

    media_type = "image/png"

    def __init__(self, body: bytes, *, total: int, duration_s: float, cut_at: int | None) -> None:
        super().__init__(content=None, media_type=self.media_type)
        self._payload = body
        self._total = max(total, len(body))
        self._duration_s = duration_s
        self._cut_at = cut_at
        self.headers["content-length"] = str(self._total)

    def _chunk_size(self) -> int:
        if self._duration_s > 0:
            return max(1, -(-self._total // _TRICKLE_SLICES))
        return _CHUNK

    def _chunks(self, size: int) -> Iterator[bytes]:
        for start in range(0, self._total, size):
            end = min(start + size, self._total)
            head = self._payload[start:end]
            yield head + bytes(end - start - len(head))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        size = self._chunk_size()
        pause = self._duration_s / -(-self._total // size) if self._duration_s > 0 else 0.0
        sent = 0
        for chunk in self._chunks(size):
            if self._cut_at is not None and sent + len(chunk) >= self._cut_at:
                partial = chunk[: self._cut_at - sent]
                await send({"type": "http.response.body", "body": partial, "more_body": True})
                return  # the server hangs up on an unfinished response: a cut connection
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
            if pause:
                await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def faulty_download(png: bytes, knobs: FaultKnobs) -> Response:
    """The response for a download that ``knobs`` say must go wrong."""
    duration_s = knobs.download_delay_ms / 1000
    if knobs.download_error == "http_500":
        await asyncio.sleep(duration_s)
        return PlainTextResponse("imagetron-sandbox: injected download failure", status_code=500)
    body = NOT_AN_IMAGE if knobs.download_not_image else png
    total = max(len(body), knobs.download_oversized_bytes)
    cut_at = total // 2 if knobs.download_error == "connection_cut" else None
    return FaultyBody(body, total=total, duration_s=duration_s, cut_at=cut_at)
