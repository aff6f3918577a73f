"""The typed set of fault-injection knobs (global, or overridden per task by prompt tokens)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DownloadError = Literal["none", "http_500", "connection_cut"]


class FaultKnobs(BaseModel):
    """What should go wrong. The defaults mean: nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- Midjourney task lifecycle -------------------------------------------------
    generation_fail: bool = Field(
        default=False, description="The task ends in status 'failed' with an error object."
    )
    generation_stuck: bool = Field(
        default=False, description="The task stays 'processing' forever and never finishes."
    )
    queue_delay_ms: int = Field(
        default=0, ge=0, description="Extra time the task stays 'pending' (room to cancel)."
    )

    # --- Webhooks --------------------------------------------------------------------
    webhook_duplicates: int = Field(
        default=0, ge=0, le=10, description="Extra identical copies sent of every webhook."
    )
    webhook_out_of_order: bool = Field(
        default=False,
        description="Hold progress webhooks; deliver the terminal one first, then the stale ones.",
    )
    webhook_delay_ms: int = Field(
        default=0, ge=0, description="Wait this long before delivering each webhook."
    )
    webhook_drop: bool = Field(default=False, description="Never deliver any webhook.")

    # --- Image downloads -----------------------------------------------------------
    download_delay_ms: int = Field(
        default=0, ge=0, description="Trickle each image body out over this many milliseconds."
    )
    download_error: DownloadError = Field(
        default="none",
        description="'http_500' answers 500; 'connection_cut' sends half the body and hangs up.",
    )
    download_oversized_bytes: int = Field(
        default=0, ge=0, description="Pad the PNG with trailing bytes up to this total size."
    )
    download_not_image: bool = Field(
        default=False, description="Serve bytes that are not an image, labelled image/png."
    )
    download_fault_attempts: int = Field(
        default=0,
        ge=0,
        description="0: every download is faulty; N: only the first N downloads of each image.",
    )

    # --- Chat completions ----------------------------------------------------------
    chat_delay_ms: int = Field(default=0, ge=0, description="Wait this long before answering.")
    chat_rate_limit: bool = Field(default=False, description="Answer 429 with retry-after.")
    chat_retry_after_s: int = Field(default=1, ge=0, description="retry-after of the 429.")
    chat_server_error: bool = Field(default=False, description="Answer 500.")
    chat_refusal: bool = Field(
        default=False, description="Answer with message.refusal set and content null."
    )
    chat_malformed_json: bool = Field(
        default=False, description="Answer 200 with content that is not valid JSON."
    )
    chat_fault_attempts: int = Field(
        default=0,
        ge=0,
        description="0: every request is faulty; N: only the first N attempts of each request.",
    )

    # --- The stock agency's SFTP server ------------------------------------------------
    agency_auth_fail: bool = Field(
        default=False, description="Refuse every SFTP login, as for a wrong password."
    )
    agency_disconnect_after_bytes: int = Field(
        default=0, ge=0, description="Drop the connection once an upload wrote this many bytes."
    )
    agency_disk_full: bool = Field(
        default=False, description="Every write fails: no space left on the server."
    )
    agency_slow_ms: int = Field(default=0, ge=0, description="Wait this long before each write.")
    agency_fault_attempts: int = Field(
        default=0,
        ge=0,
        description="0: every upload is faulty; N: only the first N uploads of each file.",
    )

    def overridden(self, overrides: dict[str, object]) -> FaultKnobs:
        """These knobs with ``overrides`` applied (validated)."""
        if not overrides:
            return self
        return FaultKnobs.model_validate({**self.model_dump(), **overrides})

    @property
    def download_faulty(self) -> bool:
        return (
            self.download_delay_ms > 0
            or self.download_error != "none"
            or self.download_oversized_bytes > 0
            or self.download_not_image
        )

    @property
    def agency_upload_faulty(self) -> bool:
        return (
            self.agency_disconnect_after_bytes > 0
            or self.agency_disk_full
            or self.agency_slow_ms > 0
        )

    @property
    def chat_faulty(self) -> bool:
        return (
            self.chat_delay_ms > 0
            or self.chat_rate_limit
            or self.chat_server_error
            or self.chat_refusal
            or self.chat_malformed_json
        )
