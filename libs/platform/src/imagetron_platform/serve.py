"""Run a service's ASGI app under uvicorn with graceful shutdown, and exit at once with a
non-zero status when its start-up fails (the supervisor then restarts it)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import resource
import sys
import threading
import time

# Imported with this module rather than by each service after the fork server forked it (it
# imports this module, through every service, once for all): uvicorn's implementations, named
# in `serve` rather than "auto", which picked them anew at every start; and httpcore, which
# httpx imports when a service makes its first client.
import httpcore  # noqa: F401
import uvicorn
import uvicorn.lifespan.on
import uvicorn.loops.uvloop
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imagetron_platform.settings import ServiceSettings

log = logging.getLogger(__name__)


#: Longest the tasks still running once uvicorn is done get to end after their cancellation.
LEFTOVER_SECONDS = 2.0
#: Longest the interpreter may take to exit after `serve` (it joins every non-daemon thread,
#: an executor's worker in a blocking call too) before the process ends without it.
EXIT_SECONDS = 5.0


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Blocks until SIGINT/SIGTERM; in-flight requests get `shutdown_grace_seconds`, then the
    app's lifespan stops its consumers and closes its connections. A start-up that fails
    (the lifespan raised: it has stopped what it started) ends the process with uvicorn's
    status for it (3) within `LEFTOVER_SECONDS` + `EXIT_SECONDS`, whatever still runs."""
    raise_open_file_limit()
    server = uvicorn.Server(uvicorn_config(app, settings))
    code = 1
    try:
        code = run_server(server)
    finally:
        exit_within(EXIT_SECONDS, code)
    if code:
        sys.exit(code)


def run_server(server: uvicorn.Server) -> int:
    """Run `server` on an event loop of its own until it is done, then end the tasks still
    running, bounded: `asyncio.run` (uvicorn's `Server.run`) waits for ever for a task that
    does not end when cancelled, and runs every other one meanwhile (a service whose start
    failed went on consuming and answering for two minutes). Returns the exit status
    uvicorn asked for: 0, or its `SystemExit`'s (3 when the start-up failed)."""
    new_loop = server.config.get_loop_factory() or asyncio.new_event_loop
    loop = new_loop()
    try:
        return loop.run_until_complete(_serve(server))
    finally:
        try:
            loop.run_until_complete(_end_leftovers(LEFTOVER_SECONDS))
        finally:
            loop.close()


async def _serve(server: uvicorn.Server) -> int:
    try:
        await server.serve()
    except SystemExit as exit_:  # uvicorn's answer to a failed start-up, a port taken
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


async def _end_leftovers(seconds: float) -> None:
    """Cancel the tasks still running and wait at most `seconds` for them, and for the
    loop's async generators and default executor; what has not ended by then is logged and
    left behind."""
    loop = asyncio.get_running_loop()
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    finishing = {
        *tasks,
        asyncio.ensure_future(loop.shutdown_asyncgens()),
        asyncio.ensure_future(loop.shutdown_default_executor()),
    }
    done, pending = await asyncio.wait(finishing, timeout=seconds)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s failed as it ended", _task_name(task), exc_info=error)
    for task in pending:
        stack = io.StringIO()
        task.print_stack(limit=5, file=stack)
        log.error(
            "%s did not end within %g s; exiting without it\n%s",
            _task_name(task),
            seconds,
            stack.getvalue(),
        )


def _task_name(task: asyncio.Future[object]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)


def exit_within(seconds: float, code: int) -> None:
    """End the process with `code` if it has not exited `seconds` from now (a daemon thread:
    it runs while the interpreter joins the other threads at exit)."""

    def watchdog() -> None:
        time.sleep(seconds)
        alive = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
        log.error(
            "not exited %g s after the server stopped (threads: %s); exiting now",
            seconds,
            ", ".join(alive),
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(code)

    threading.Thread(target=watchdog, name="imagetron-exit-watchdog", daemon=True).start()


def uvicorn_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # logging is configured by init_observability
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        proxy_headers=True,
        server_header=False,
        http=HttpToolsProtocol,
        loop="uvloop",
        lifespan="on",
        ws="none",  # no service serves WebSockets: uvicorn's protocol for them is not loaded
    )


def raise_open_file_limit() -> int:
    """Raise this process's open-file limit to the most it may have (the hard limit), as
    servers do: every connection is a file, and the default soft limit (often 1,024) is far
    below the thousands of event streams a notifier or gateway holds. Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, hard)
            return soft
        return hard
    return soft
