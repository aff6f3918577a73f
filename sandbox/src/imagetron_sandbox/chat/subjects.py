"""Concrete image subjects made from the words of a request (no model, just templates)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagetron_sandbox.determinism import Dice

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+")
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "for",
        "to",
        "in",
        "on",
        "at",
        "by",
        "with",
        "from",
        "about",
        "into",
        "over",
        "under",
        "as",
        "is",
        "are",
        "be",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "i",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "some",
        "any",
        "each",
        "every",
        "please",
        "can",
        "could",
        "would",
        "should",
        "will",
        "just",
        "also",
        "very",
        "really",
        "more",
        "most",
        "give",
        "make",
        "create",
        "generate",
        "write",
        "list",
        "suggest",
        "propose",
        "need",
        "want",
        "like",
        "idea",
        "ideas",
        "prompt",
        "prompts",
        "image",
        "images",
        "picture",
        "pictures",
        "photo",
        "photos",
        "subject",
        "subjects",
        "concept",
        "concepts",
        "series",
        "set",
        "few",
        "several",
        "different",
        "distinct",
        "unique",
        "new",
        "good",
        "great",
        "nice",
        "cool",
        "interesting",
        "creative",
        "variations",
        "variation",
        "options",
        "option",
        "return",
        "json",
        "array",
        "object",
        "answer",
        "reply",
        "respond",
        "response",
        "describe",
        "description",
        "about",
        "around",
        "based",
    ]
)
DEFAULT_TOPIC = "a quiet mountain lake"
DEFAULT_COUNT = 5
MAX_COUNT = 20
TEMPLATES = (
    "{topic} at golden hour, wide-angle landscape shot",
    "close-up of {topic} with shallow depth of field",
    "{topic} as a detailed watercolor illustration",
    "aerial view of {topic} in early morning mist",
    "{topic} at night under neon lights, cinematic",
    "minimalist poster of {topic} on a pastel background",
    "{topic} in the style of a vintage travel photograph",
    "isometric 3D render of {topic}",
    "{topic} during a summer thunderstorm, dramatic sky",
    "macro photograph of the textures of {topic}",
    "{topic} reflected in a still lake at dawn",
    "paper-cut collage of {topic}",
)
STYLES = ("watercolor", "cinematic", "isometric", "photographic", "minimalist", "collage")
COLOURS = ("teal", "amber", "crimson", "ivory", "indigo", "olive", "coral", "slate")


@dataclass(frozen=True, slots=True)
class Topic:
    """What a request is about: its meaningful words, in order."""

    words: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Topic:
        words: list[str] = []
        for word in _WORD.findall(text):
            lowered = word.lower()
            if lowered in _FILLER or lowered.isdigit() or lowered in _NUMBER_WORDS:
                continue
            if lowered not in words:
                words.append(lowered)
        return cls(tuple(words[:8]))

    @property
    def phrase(self) -> str:
        return " ".join(self.words) if self.words else DEFAULT_TOPIC

    def word(self, index: int) -> str:
        return self.words[index % len(self.words)] if self.words else "lake"

    def subject(self, index: int, dice: Dice) -> str:
        """The ``index``-th concrete image subject (distinct for the first 12)."""
        start = dice.fork("start").between(0, len(TEMPLATES) - 1)
        template = TEMPLATES[(start + index) % len(TEMPLATES)]
        subject = template.format(topic=self.phrase)
        if index >= len(TEMPLATES):
            subject += f", take {index // len(TEMPLATES) + 1}"
        return subject[0].upper() + subject[1:]


def requested_count(text: str) -> int:
    """How many items the text asks for ("10 ideas", "three prompts"), else 5."""
    for word in _WORD.findall(text):
        lowered = word.lower()
        count = int(lowered) if lowered.isdigit() else _NUMBER_WORDS.get(lowered)
        if count is not None and 1 <= count <= MAX_COUNT:
            return count
    return DEFAULT_COUNT


def numbered_list(text: str, dice: Dice, suffix: str = "") -> str:
    """The plain-text answer: a numbered list of image subjects about ``text``."""
    topic = Topic.of(text)
    tail = f" {suffix}" if suffix else ""
    return "\n".join(
        f"{number}. {topic.subject(number - 1, dice)}{tail}"
        for number in range(1, requested_count(text) + 1)
    )
