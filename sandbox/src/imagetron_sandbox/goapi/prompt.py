"""Reading a Midjourney prompt: its words, its ``--param value`` pairs, its sandbox tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagetron_sandbox.faults.tokens import ParsedPrompt, parse_prompt

_PARAM = re.compile(r"(?<!\S)--([A-Za-z][\w-]*)(?:\s+([^\s-]\S*))?")


@dataclass(frozen=True, slots=True)
class MidjourneyPrompt:
    """A prompt split into what to draw, the Midjourney parameters and the sandbox tokens."""

    text: str
    params: dict[str, str]
    sandbox: ParsedPrompt

    @property
    def aspect_ratio(self) -> str | None:
        return self.params.get("ar") or self.params.get("aspect")

    @property
    def version(self) -> str | None:
        if "niji" in self.params:
            return f"niji {self.params['niji']}".strip()
        return self.params.get("v") or self.params.get("version")


def parse_midjourney_prompt(prompt: str) -> MidjourneyPrompt:
    """Raises :class:`~imagetron_sandbox.faults.tokens.FaultTokenError` for bad tokens."""
    sandbox = parse_prompt(prompt)
    params = {
        match.group(1).lower(): match.group(2) or "" for match in _PARAM.finditer(sandbox.text)
    }
    text = " ".join(_PARAM.sub(" ", sandbox.text).split())
    return MidjourneyPrompt(text=text, params=params, sandbox=sandbox)
