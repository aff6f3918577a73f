"""JSON log lines with the service name and the correlation id on every line."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from imagetron_platform import correlation


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        record.correlation_id = correlation.current()
        return True


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Route every logger (ours, uvicorn's, FastStream's) to one stderr handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(service))
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(correlation_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(service)s %(name)s [%(correlation_id)s] %(message)s"
            )
        )
    # What no line shows is not gathered for every record either (the logging HOWTO's
    # "Optimization"): the calling frame's file and line, thread and process names. A line
    # is written per request and per message: this halves what each costs.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Access lines duplicate the HTTP metrics and drown the useful ones.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
