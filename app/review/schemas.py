from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from app.validation import MAX_ID, StrictInput


class AssignmentIn(StrictInput):
    user_id: int = Field(gt=0, le=MAX_ID)
    role: Literal["assignee", "reviewer"] = Field(
        description="assignee: the one checker working the claim (starts a queued claim for them); "
        "reviewer: an editor asked to review."
    )


class AssigneeOut(BaseModel):
    user_id: int
    name: str | None
    email: str | None
    lease_expires_at: datetime | None


class ReviewerOut(BaseModel):
    user_id: int
    name: str
    email: str
    added_at: datetime
    added_by: int | None


class AssignmentsOut(BaseModel):
    claim_id: int
    assignee: AssigneeOut | None
    reviewers: list[ReviewerOut]


class CommentIn(StrictInput):
    body: Annotated[str, StringConstraints(max_length=20_000)] = Field(
        description="Markdown-free text; mention people as @email to notify them.",
        examples=["@noor@desk.example the archive copy contradicts the date"],
    )


class CommentOut(BaseModel):
    id: int
    claim_id: int
    author_id: int | None
    body: str
    mentions: list[int] = Field(description="User ids mentioned by @email.")
    created_at: datetime


class CommentList(BaseModel):
    items: list[CommentOut]
    next_cursor: str | None


class AssigneeLoad(BaseModel):
    user_id: int
    name: str
    state: str
    count: int


class DeskStats(BaseModel):
    by_state: dict[str, int]
    per_assignee: list[AssigneeLoad]
    overdue: int
    oldest_queued_seconds: float | None
    median_seconds_to_publish_7d: float | None = Field(
        description="Median time from submission to first publication, over claims first published in the last 7 days."
    )
    published_last_7d: int
    as_of: datetime
