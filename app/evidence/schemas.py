from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from app.claims.schemas import Dimension, Url
from app.validation import StrictInput, UTCDatetime


class Stance(StrEnum):
    supports = "supports"
    refutes = "refutes"
    context = "context"


class Visibility(StrEnum):
    public = "public"
    internal = "internal"


NoteText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]


class EvidenceIn(StrictInput):
    """A link or a note, as JSON. Files are uploaded as multipart with the part `file`."""

    kind: Literal["link", "note"]
    url: Url | None = Field(default=None, description="For links: http or https only. Never fetched by the service.")
    archived_url: Url | None = Field(default=None, description="An archived copy (e.g. a web archive snapshot).")
    accessed_at: UTCDatetime | None = None
    note: NoteText | None = Field(default=None, description="What the item shows; required for notes.")
    stance: Stance = Stance.context
    dimension: Dimension | None = None
    visibility: Visibility = Visibility.internal


class ReasonIn(StrictInput):
    reason: Reason


class EvidencePublic(BaseModel):
    id: int
    claim_id: int
    kind: str
    stance: str
    dimension: str | None
    visibility: str
    note: str | None
    url: str | None
    archived_url: str | None
    accessed_at: datetime | None
    sha256: str | None
    size: int | None
    media_type: str | None
    filename: str | None
    added_by: int | None
    added_at: datetime
    retracted: bool
    retracted_at: datetime | None
    retracted_by: int | None
    retract_reason: str | None
    purged: bool
    purged_at: datetime | None
    purged_by: int | None
    purge_reason: str | None


class EvidenceList(BaseModel):
    items: list[EvidencePublic]
    next_cursor: str | None
