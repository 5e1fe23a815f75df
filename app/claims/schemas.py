"""Request and response shapes for claims. Unknown fields are refused (422)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, WithJsonSchema, model_validator

from app.claims.states import State
from app.intake.numbers import QUALIFIERS, VAGUE_QUALIFIERS
from app.validation import StrictInput, UTCDatetime

MAX_TEXT = 1000
# The qualifiers the intake extractor gives a figure ("at least 40", "dozens", "between 30 and 40").
FIGURE_QUALIFIERS = frozenset({canonical for _, canonical in QUALIFIERS} | VAGUE_QUALIFIERS | {"between"})


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


PRIORITY_RANK = {Priority.urgent: 0, Priority.high: 1, Priority.normal: 2, Priority.low: 3}


class Confidence(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class Dimension(StrEnum):
    source = "source"
    location = "location"
    date = "date"
    event = "event"
    figure = "figure"


class Finding(StrEnum):
    confirmed = "confirmed"
    unverified = "unverified"
    false = "false"


def _http_url(value: str) -> str:
    lowered = value.lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")) or len(value) < 11:
        raise ValueError("must be an http or https URL")
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain spaces")
    return value


ClaimText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), AfterValidator(_http_url)]
Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)]
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64, pattern=r"^[^\s,]+$"),
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]


class Strict(StrictInput):
    pass


def _qualifier(value: str) -> str:
    if value not in FIGURE_QUALIFIERS:
        raise ValueError(f"must be one of: {', '.join(sorted(FIGURE_QUALIFIERS))}")
    return value


Qualifier = Annotated[
    str, AfterValidator(_qualifier), WithJsonSchema({"type": "string", "enum": sorted(FIGURE_QUALIFIERS)})
]
Amount = Annotated[float, Field(allow_inf_nan=False, ge=-1e18, le=1e18)]


class ClaimFigure(Strict):
    """The quantity a claim states, in the extractor's terms: "at least 40" is low 40, no high."""

    low: Amount | None = None
    high: Amount | None = None
    qualifier: Qualifier | None = Field(default=None, examples=["at least"])
    counted: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        default=None, examples=["people killed"]
    )
    unit: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = Field(
        default=None, description='"people", "%", a currency code, a measure.'
    )
    as_of: date | None = Field(default=None, description="The date the figure refers to.")

    @model_validator(mode="after")
    def _bounds(self) -> ClaimFigure:
        if self.low is None and self.high is None:
            raise ValueError("a figure needs low, high or both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low must not be greater than high")
        return self


class ClaimSource(BaseModel):
    """Where in an intake article the claim was taken from: ``text[start:end]`` of that article."""

    article_id: int
    start: int
    end: int


class ClaimCreate(Strict):
    text: ClaimText = Field(
        description="The claim as made, 1-1,000 characters.", examples=["40 people died in the district"]
    )
    claimant: ShortText | None = Field(default=None, examples=["the regional governor"])
    appearance_url: Url | None = Field(default=None, description="Where the claim appeared.")
    appeared_at: UTCDatetime | None = None
    outlet: ShortText | None = None
    context: LongText | None = Field(default=None, description="The surrounding quote or context.")
    language: Language | None = Field(default=None, examples=["en"])
    tags: list[Tag] = Field(default_factory=list, max_length=20, examples=[["flood", "casualties"]])
    priority: Priority = Priority.normal
    due_at: UTCDatetime | None = Field(default=None, description="The desk's deadline for a verdict.")
    public: bool | None = Field(default=None, description="Whether a published verdict gets a public page.")
    figure: ClaimFigure | None = Field(default=None, description="The quantity the claim states, if any.")


class ClaimUpdate(Strict):
    text: ClaimText | None = None
    claimant: ShortText | None = None
    appearance_url: Url | None = None
    appeared_at: UTCDatetime | None = None
    outlet: ShortText | None = None
    context: LongText | None = None
    language: Language | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)
    priority: Priority | None = None
    due_at: UTCDatetime | None = None
    public: bool | None = None
    figure: ClaimFigure | None = None


class ActionBody(Strict):
    reason: Reason | None = Field(default=None, description="Required to reject and reopen.")
    comment: Reason | None = Field(default=None, description="Required to request changes.")


class VerdictIn(Strict):
    rating: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="A rating id from the desk's scale (GET /public/rating-scale).", examples=["false"]
    )
    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)] = Field(
        description="The public explanation."
    )
    confidence: Confidence | None = None
    recheck_at: UTCDatetime | None = Field(
        default=None, description="Only for ratings that can be rechecked (unverified, disputed)."
    )
    findings: dict[Dimension, Finding] | None = Field(
        default=None,
        description="What is established per dimension, e.g. {location: confirmed, date: unverified}.",
    )


class VerdictPublic(BaseModel):
    rating: str
    label: str | None
    summary: str | None
    confidence: str | None
    recheck_at: datetime | None
    findings: dict[str, str] | None
    author_id: int | None
    set_at: datetime | None


class ApprovalPublic(BaseModel):
    editor_id: int
    approved_at: datetime


class ClaimPublic(BaseModel):
    id: int
    text: str
    claimant: str | None
    appearance_url: str | None
    appeared_at: datetime | None
    outlet: str | None
    context: str | None
    language: str | None
    tags: list[str]
    priority: Priority
    due_at: datetime | None
    overdue: bool
    public: bool
    state: State
    reject_reason: str | None
    figure: ClaimFigure | None = None
    source: ClaimSource | None = None
    verdict: VerdictPublic | None
    assignee_id: int | None
    lease_expires_at: datetime | None
    reviewers: list[int]
    approvals: list[ApprovalPublic]
    review_round: int
    published_verdict: dict[str, Any] | None
    published_at: datetime | None
    version: int
    created_by: int | None
    created_at: datetime
    updated_by: int | None
    updated_at: datetime
    allowed_actions: list[str] = Field(description="Actions the caller may take from the current state.")


class ClaimList(BaseModel):
    items: list[ClaimPublic]
    next_cursor: str | None


class BatchIn(Strict):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class BatchResult(BaseModel):
    index: int
    status: int
    claim: ClaimPublic | None = None
    problem: dict[str, Any] | None = None


class BatchOut(BaseModel):
    results: list[BatchResult]


class EventPublic(BaseModel):
    id: int
    seq: int
    type: str
    claim_id: int | None
    actor_id: int | None
    api_key_id: int | None
    request_id: str | None
    data: dict[str, Any]
    created_at: datetime
    hash: str


class EventList(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None
