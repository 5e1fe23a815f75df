"""One Settings object, read from CLAIMDESK_* environment variables (and a .env file if present)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.ratelimit import parse_rate


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAIMDESK_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./claimdesk.db"
    # FULL keeps every acknowledged write through a power cut; NORMAL is faster and safe against a
    # process crash only. Read only for SQLite.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    storage: str = "./data/evidence"
    s3_endpoint_url: str = ""
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024)
    rate_limit_writes: str = "600/minute"
    webhook_allowed_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_allow_http: bool = False
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    webhook_timeout: float = Field(default=15.0, gt=0)
    webhook_disable_after: float = Field(default=432000.0, gt=0)
    # Attempts on the wire at once per worker process, and to any one endpoint.
    # At most 100 each: every attempt holds a connection (and a file descriptor) of its own.
    webhook_concurrency: int = Field(default=64, ge=1, le=100)
    webhook_concurrency_per_endpoint: int = Field(default=16, ge=1, le=100)
    # Read-only API routes (lists, search) that run in threads, at most this many at once per
    # process; the rest wait their turn. Python runs one thread at a time, and many threads taking
    # turns on CPU-heavy reads cost about twice the CPU per request (measured). Unset: 2 on SQLite,
    # 8 on PostgreSQL (app.db).
    read_concurrency: int | None = Field(default=None, ge=1, le=40)
    review_quorum: int = Field(default=1, ge=1, le=10)
    lease_seconds: int = Field(default=14400, ge=1)
    public_base_url: str = "http://127.0.0.1:8000"
    public_by_default: bool = False
    org_name: str = "Claimdesk"
    org_url: str = ""
    rating_scale: str = ""
    secret_key: str = ""
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (comma-separated, or *).
    forwarded_allow_ips: str = ""
    log_level: str = "INFO"
    log_json: bool = False
    worker_poll_seconds: float = Field(default=1.0, gt=0)

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper_synchronous(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("webhook_allowed_cidrs", mode="before")
    @classmethod
    def _split_cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for cidr in value:
                ipaddress.ip_network(cidr, strict=False)
        return value

    @field_validator("rate_limit_writes")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)  # a bad value stops the start, not the first write
        return value.strip()

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            value = [float(part) for part in value.split(",") if part.strip()]
        return value

    @property
    def org_url_or_base(self) -> str:
        return self.org_url or self.public_base_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
