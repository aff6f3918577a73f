"""The publisher's settings: one class, read from `IMAGETRON_*` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from imagetron_platform.settings import DatabaseSettings

MB = 1_000_000


class PublisherSettings(DatabaseSettings):
    http_port: int = Field(default=8084, ge=0, le=65535)
    database_migrate_on_start: bool = Field(
        default=True,
        description="Apply the schema migrations when the service starts (an advisory lock "
        "serialises replicas starting together).",
    )

    # The images service's bucket: its originals are read (never written); prepared files
    # go under `<owner>/publications/`.
    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_access_key: str = "imagetron"
    s3_secret_key: SecretStr = SecretStr("imagetron-secret")
    s3_bucket: str = "imagetron"
    s3_region: str = "us-east-1"

    # Agency passwords are encrypted with this (any long random string); older keys,
    # newest first, still decrypt what they encrypted (key rotation).
    credentials_key: SecretStr = SecretStr("change-me-credentials-key")
    credentials_previous_keys: list[SecretStr] = Field(default_factory=list)

    # Adobe Stock's contributor SFTP. `known_hosts`: the server's known_hosts line(s);
    # unset, the host key is not verified (logged as a warning at start-up).
    adobe_stock_sftp_host: str = "sftp.contributor.adobestock.com"
    adobe_stock_sftp_port: int = Field(default=22, ge=1, le=65535)
    adobe_stock_sftp_known_hosts: str | None = None
    # Adobe takes the CSV in its portal only; the sandbox's agency takes it by SFTP too.
    adobe_stock_upload_csv: bool = False

    sftp_connect_timeout_seconds: float = Field(default=20.0, gt=0)
    # One upload's bound beyond connecting: this, plus the file's size at the minimum rate.
    sftp_upload_timeout_seconds: float = Field(default=120.0, gt=0)
    sftp_min_bytes_per_second: int = Field(default=256 * 1024, ge=1024)

    # Uploads of one account at once (per replica), and upload jobs per replica.
    uploads_per_account: int = Field(default=2, ge=1, le=16)
    upload_concurrency: int = Field(default=4, ge=1, le=64)
    # Originals decoded at once per replica (a 100-megapixel image takes ~300 MB).
    prepare_concurrency: int = Field(default=2, ge=1, le=16)
    max_source_pixels: int = Field(default=64_000_000, ge=1)
    max_original_bytes: int = Field(default=100 * MB, ge=1)
    jpeg_quality: int = Field(default=95, ge=70, le=100)

    # Deliveries of one job before it is given up (the publication is then marked failed).
    upload_max_deliveries: int = Field(default=8, ge=1, le=100)
    suggest_max_deliveries: int = Field(default=5, ge=1, le=100)
    csv_max_deliveries: int = Field(default=8, ge=1, le=100)
    # How long the prompts service may take to suggest metadata (above its LLM deadline).
    suggest_timeout_seconds: float = Field(default=120.0, gt=0)

    @field_validator("adobe_stock_sftp_known_hosts")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None
