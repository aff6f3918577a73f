"""The bare-FastAPI reference: one route shaped like a provider callback (a UUID in the
path, a JSON body read whole, a small JSON answer), nothing else, served by uvicorn as our
services are (`imagetron_platform.serve`: httptools and uvloop when installed).

    python bench/bare_fastapi.py PORT
"""

from __future__ import annotations

import sys
import uuid

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/webhooks/goapi/{task_id}")
async def receive(task_id: uuid.UUID, request: Request) -> dict[str, str]:
    await request.body()
    return {"status": "accepted"}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        log_level="warning",
        proxy_headers=True,
        server_header=False,
    )
