"""The base of every request body: unknown fields are refused, and so is a NUL character in any
text (PostgreSQL cannot store one, and no claim, note or name needs one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator


def contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple | set | frozenset):
        return any(contains_nul(v) for v in value)
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    return False


class StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if contains_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


# For query parameters: Query(pattern=NO_NUL_PATTERN).
NO_NUL_PATTERN = r"^[^\x00]*$"


def _to_utc(value: datetime) -> datetime:
    """A time without a zone is taken as UTC; every time is stored in UTC, so one that cannot be
    expressed there (year 1 or 9999 shifted past the edge) is refused."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of the range of dates that can be stored") from exc


UTCDatetime = Annotated[datetime, AfterValidator(_to_utc)]

# The database's integer ids are 32-bit on PostgreSQL.
MAX_ID = 2**31 - 1
