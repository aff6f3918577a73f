"""What the fork server imports for our six processes (`APP_MODULES`, then each service's
app built as it starts) leaves out what none of them needs to become ready: each of these
was on the path of every `imagetron up` (CPU of its import on this machine, compiled)."""

from __future__ import annotations

import json
import subprocess
import sys

from imagetron.stack_ports import APP_MODULES

#: Imported at first use, if ever.
LEFT_OUT = {
    "openai": "0.6-0.7 s: prompts' language model, images' OpenAI Images provider",
    "alembic": "0.16 s: only for a schema behind its head",
    "sentry_sdk": "0.07 s: only with a DSN",
}


def test_the_services_start_without_what_only_their_first_use_needs() -> None:
    started = f"""
import importlib, json, sys
for module in {sorted(APP_MODULES.values())!r}:
    importlib.import_module(module + ".__main__")
from imagetron_images.bootstrap import create_app as images_app
from imagetron_images.settings import ImagesSettings
from imagetron_prompts.bootstrap import create_app as prompts_app
from imagetron_prompts.settings import PromptsSettings
images_app(ImagesSettings())
prompts_app(PromptsSettings())
print(json.dumps(sorted(name for name in {sorted(LEFT_OUT)!r} if name in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", started], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = json.loads(result.stdout.splitlines()[-1])
    assert imported == [], {name: LEFT_OUT[name] for name in imported}


def test_serving_imports_nothing_the_fork_server_has_not() -> None:
    """What uvicorn and httpx import as a service starts to serve (its protocol, loop and
    lifespan; httpcore for its first client) is imported with the services' code, by the fork
    server once for all, not by each service after its fork."""
    serving = f"""
import asyncio, importlib, json, sys
for module in {sorted(APP_MODULES.values())!r}:
    importlib.import_module(module + ".__main__")
before = set(sys.modules)
import httpx
from fastapi import FastAPI
from imagetron_platform.serve import uvicorn_config
from imagetron_platform.settings import ServiceSettings
config = uvicorn_config(FastAPI(), ServiceSettings())
config.load()
config.get_loop_factory()
async def client() -> None:
    async with httpx.AsyncClient():
        pass
asyncio.run(client())
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    result = subprocess.run(
        [sys.executable, "-c", serving], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    after_fork = json.loads(result.stdout.splitlines()[-1])
    assert [m for m in after_fork if m.split(".")[0] in SERVING] == []


#: What serving imports (uvicorn's protocols, WebSockets libraries, httpx's transport).
SERVING = {"uvicorn", "websockets", "wsproto", "httptools", "uvloop", "httpcore", "h11"}
