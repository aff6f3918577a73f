"""What goes wrong with a server: the errors `imagetron.servers` raises."""

from __future__ import annotations

from pathlib import Path


class ServerError(RuntimeError):
    """Base class for every error raised by this module."""


class ServerStartError(ServerError):
    """A server exited or did not become ready during ``start()``."""

    def __init__(self, what: str, reason: str, log_path: Path | None, log_tail: str = "") -> None:
        self.what = what
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        message = f"{what} {reason}"
        if log_path is not None:
            message += f" (log: {log_path})"
        if log_tail.strip():
            indented = "\n".join(f"    {line}" for line in log_tail.rstrip().splitlines())
            message += f"\nlast lines of the log:\n{indented}"
        super().__init__(message)


class ServerExitedError(ServerStartError):
    """The server exited during ``start()`` (rather than not answering in time)."""


class BinaryNotFoundError(ServerError):
    """A server executable could not be located."""
