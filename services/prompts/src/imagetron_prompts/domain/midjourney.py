"""Midjourney prompts as the language model drafts them, and the text they become.

A draft has four descriptive parts and a title. The text is the parts joined by commas,
then the Midjourney parameters, which we add ourselves rather than trust the model with:
`--ar W:H` from the request. Midjourney reads the text before the first `--` as the
description and everything after as parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ASPECT_RATIO = re.compile(r"^[1-9][0-9]?:[1-9][0-9]?$")
_SPACES = re.compile(r"\s+")


def _part(text: str) -> str:
    return _SPACES.sub(" ", text).strip().strip(",;. ")


@dataclass(frozen=True, slots=True)
class PromptDraft:
    subject: str
    style: str
    lighting: str
    composition: str
    title: str

    def text(self, aspect_ratio: str) -> str:
        """`subject, style, lighting, composition --ar W:H` (empty parts left out)."""
        if not ASPECT_RATIO.match(aspect_ratio):
            raise ValueError(f"not an aspect ratio: {aspect_ratio!r}")
        parts = [_part(p) for p in (self.subject, self.style, self.lighting, self.composition)]
        description = ", ".join(p for p in parts if p)
        return f"{description} --ar {aspect_ratio}"

    @property
    def clean_title(self) -> str:
        return _SPACES.sub(" ", self.title).strip()
