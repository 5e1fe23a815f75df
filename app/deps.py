"""Shared route dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from app.config import Settings


async def _settings(request: Request) -> Settings:  # async: no thread-pool hop for a field read
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]
IfMatch = Annotated[
    str | None,
    Header(description='The ETag you read (`"<version>"`); a stale one gets 412. Omit for last-writer-wins.'),
]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=255, description="Makes a retry safe: the same key and body replay the first response."),
]
