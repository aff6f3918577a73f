"""Per-task/per-request fault overrides written into prompt text as ``--sandbox-...`` tokens.

Our services only pass prompts through, so a prompt is the one channel that reaches the
sandbox unchanged. Grammar: ``--sandbox-NAME`` or ``--sandbox-NAME=VALUE`` where NAME is an
alias from :data:`ALIASES` or any :class:`FaultKnobs` field (dashes or underscores).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from imagetron_sandbox.faults.knobs import FaultKnobs

TOKEN_PATTERN = re.compile(r"(?<!\S)--sandbox-([A-Za-z0-9_-]+)(?:=(\S+))?")
DEFAULT_OVERSIZED_BYTES = 50 * 1024 * 1024

Overrides = dict[str, object]


class FaultTokenError(ValueError):
    """A ``--sandbox-`` token that names no knob or carries an invalid value."""


def _flag(field: str) -> Callable[[str | None], Overrides]:
    def build(value: str | None) -> Overrides:
        return {field: True if value is None else value}

    return build


def _amount(field: str, default: int) -> Callable[[str | None], Overrides]:
    def build(value: str | None) -> Overrides:
        return {field: default if value is None else value}

    return build


def _with_attempts(attempts_field: str, **fields: object) -> Callable[[str | None], Overrides]:
    def build(value: str | None) -> Overrides:
        return {**fields, attempts_field: 0 if value is None else value}

    return build


ALIASES: dict[str, Callable[[str | None], Overrides]] = {
    "fail": _flag("generation_fail"),
    "stuck": _flag("generation_stuck"),
    "queue-delay": _amount("queue_delay_ms", 5000),
    "duplicate-webhooks": _amount("webhook_duplicates", 1),
    "out-of-order": _flag("webhook_out_of_order"),
    "webhook-delay": _amount("webhook_delay_ms", 2000),
    "no-webhooks": _flag("webhook_drop"),
    "slow-download": _amount("download_delay_ms", 3000),
    "download-500": _with_attempts("download_fault_attempts", download_error="http_500"),
    "download-cut": _with_attempts("download_fault_attempts", download_error="connection_cut"),
    "oversized": _amount("download_oversized_bytes", DEFAULT_OVERSIZED_BYTES),
    "not-image": _with_attempts("download_fault_attempts", download_not_image=True),
    "chat-429": _with_attempts("chat_fault_attempts", chat_rate_limit=True),
    "chat-500": _with_attempts("chat_fault_attempts", chat_server_error=True),
    "chat-refusal": _with_attempts("chat_fault_attempts", chat_refusal=True),
    "chat-malformed": _with_attempts("chat_fault_attempts", chat_malformed_json=True),
    "chat-delay": _amount("chat_delay_ms", 5000),
}


@dataclass(frozen=True, slots=True)
class FaultToken:
    raw: str
    name: str
    value: str | None

    def overrides(self) -> Overrides:
        alias = ALIASES.get(self.name.lower())
        if alias is not None:
            return alias(self.value)
        field = self.name.lower().replace("-", "_")
        if field not in FaultKnobs.model_fields:
            raise FaultTokenError(
                f"unknown sandbox token {self.raw!r}; known: "
                + ", ".join(f"--sandbox-{name}" for name in sorted(ALIASES))
                + " or --sandbox-<knob>=<value>"
            )
        return {field: True if self.value is None else self.value}

    @property
    def is_chat(self) -> bool:
        return all(key.startswith("chat_") for key in self.overrides())


@dataclass(frozen=True, slots=True)
class ParsedPrompt:
    """A prompt split into its plain text and its sandbox tokens."""

    text: str
    tokens: tuple[FaultToken, ...]

    def overrides(self, *, chat: bool | None = None) -> Overrides:
        """Merged overrides of the tokens (only chat ones, only others, or all)."""
        merged: Overrides = {}
        for token in self.tokens:
            if chat is None or token.is_chat == chat:
                merged.update(token.overrides())
        return merged

    def passthrough(self) -> tuple[str, ...]:
        """Raw tokens that are not about chat (kept in generated prompts for later stages)."""
        return tuple(token.raw for token in self.tokens if not token.is_chat)


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Split tokens off ``prompt`` and validate them against :class:`FaultKnobs`."""
    tokens = tuple(
        FaultToken(raw=match.group(0), name=match.group(1), value=match.group(2))
        for match in TOKEN_PATTERN.finditer(prompt)
    )
    parsed = ParsedPrompt(text=" ".join(TOKEN_PATTERN.sub(" ", prompt).split()), tokens=tokens)
    try:
        FaultKnobs().overridden(parsed.overrides())
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise FaultTokenError(f"invalid sandbox token value: {details}") from exc
    return parsed
