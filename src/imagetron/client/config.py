"""Where the terminal client keeps its credentials: `credentials.json` in the user's config
folder (`$XDG_CONFIG_HOME/imagetron`, usually `~/.config/imagetron`), readable by the user
alone (0600 in a 0700 folder). `IMAGETRON_URL` and `IMAGETRON_API_KEY` override it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from imagetron.client.api import ClientError, ExitCode

DEFAULT_URL = "http://127.0.0.1:8080"
FILE_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    url: str
    api_key: str


def config_dir() -> Path:
    return Path(typer.get_app_dir("imagetron"))


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


def save(credentials: Credentials) -> Path:
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / FILE_NAME
    # Created with its final mode: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(asdict(credentials), file, indent=2)
    path.chmod(0o600)
    return path


def load() -> Credentials | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(url=str(data["url"]), api_key=str(data["api_key"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClientError(
            f"{path} is unreadable ({exc}); run `imagetron login`.", ExitCode.NOT_SIGNED_IN
        ) from exc


def forget() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True
