"""The base of every request body: unknown fields are refused, and so is a NUL character in any
text (PostgreSQL cannot store one, and no claim, note or name needs one)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


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
