"""Request and response shapes for intake (articles, candidates) and related claims."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator, model_validator

from app.claims.schemas import ClaimFigure, ClaimText, Language, Priority, ShortText, Strict, Tag, Url
from app.claims.states import State

MAX_ARTICLE_CHARS = 200_000
# Share of a text that may be control characters (other than line breaks and tabs) or U+FFFD.
MAX_NOISE_SHARE = 0.1

_T = TypeVar("_T")


def text_problem(value: str) -> str | None:
    """Why ``value`` is not storable text, or None. NUL and lone surrogates cannot be stored at all
    (PostgreSQL refuses them); a text made mostly of control characters is binary, not an article."""
    if "\x00" in value:
        return "contains a NUL character"
    noise = 0
    for ch in value:
        cat = unicodedata.category(ch)
        if cat == "Cs":
            return "contains a lone surrogate (not valid Unicode text)"
        if (cat == "Cc" and ch not in "\t\n\r\f\v") or ch == "\ufffd":
            noise += 1
    if value and noise / len(value) > MAX_NOISE_SHARE:
        return "is mostly control characters, not text"
    return None


def _storable(value: _T) -> _T:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise ValueError(f"not text: {problem}")
    return value


class ArticleIn(Strict):
    text: str = Field(
        description=f"The article as published, up to {MAX_ARTICLE_CHARS:,} characters. Candidate offsets "
        "index this text exactly as sent.",
    )
    url: Url | None = Field(default=None, description="Where the article appeared.")
    outlet: ShortText | None = Field(default=None, examples=["The Valley Courier"])
    published_at: AwareDatetime | None = Field(
        default=None, description='Resolves relative dates ("on Tuesday") and dates the figures.'
    )
    language: Language | None = Field(
        default=None, description="ISO 639 code; detected from the text when omitted.", examples=["en"]
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("url", "outlet")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _storable(value)


class FigurePublic(BaseModel):
    low: float | None
    high: float | None
    qualifier: str | None
    counted: str | None
    unit: str | None
    text: str | None = None
    start: int | None = None
    end: int | None = None


class CandidatePublic(BaseModel):
    index: int
    text: str
    start: int = Field(description="``article.text[start:end] == text``.")
    end: int
    claimant: str | None
    figures: list[FigurePublic]
    dates: list[str]
    hedges: list[str]
    score: float
    reasons: list[str]
    sentence_index: int | None = None
    attribution: str | None = None
    accepted_claim_id: int | None = Field(default=None, description="The claim made from it, once accepted.")


class ArticlePublic(BaseModel):
    id: int
    text: str
    url: str | None
    outlet: str | None
    published_at: datetime | None
    language: str | None
    note: str | None = Field(description="Why there are no candidates, when the language is not supported.")
    sentences: int
    submitted_by: int | None
    created_at: datetime
    candidates: list[CandidatePublic]


class ArticleSummary(BaseModel):
    id: int
    url: str | None
    outlet: str | None
    published_at: datetime | None
    language: str | None
    note: str | None
    submitted_by: int | None
    created_at: datetime
    candidate_count: int
    accepted_count: int


class ArticleList(BaseModel):
    items: list[ArticleSummary]
    next_cursor: str | None


class AcceptIn(Strict):
    """Adjust the candidate before it becomes a claim; everything else comes from the article."""

    text: ClaimText | None = Field(default=None, description="Defaults to the candidate sentence.")
    claimant: ShortText | None = Field(default=None, description="Defaults to the extracted claimant.")
    priority: Priority | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)

    @field_validator("text", "claimant")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _storable(value)


class DuplicatePublic(BaseModel):
    claim_id: int
    text: str
    state: State
    similarity: float
    reason: str


class FigureMatchPublic(BaseModel):
    claim_id: int
    text: str
    claimant: str | None
    figure: dict[str, Any]
    reason: str


class LinkedPublic(BaseModel):
    claim_id: int
    text: str
    state: State
    reason: str
    linked_by: int | None
    linked_at: datetime


class RelatedPublic(BaseModel):
    claim_id: int
    duplicates: list[DuplicatePublic] = Field(description="Claims whose text says the same, best first.")
    figures: list[FigureMatchPublic] = Field(
        description="Claims by other claimants with a figure for the same thing (the same event's toll...)."
    )
    linked: list[LinkedPublic] = Field(description="Claims an editor linked by hand.")


class LinkIn(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None = None

    @model_validator(mode="after")
    def _clean(self) -> LinkIn:
        _storable(self.reason)
        return self


class LinkPublic(BaseModel):
    claim_id: int
    other_id: int
    reason: str | None
    linked_by: int | None
    linked_at: datetime


__all__ = [
    "MAX_ARTICLE_CHARS",
    "AcceptIn",
    "ArticleIn",
    "ArticleList",
    "ArticlePublic",
    "ArticleSummary",
    "CandidatePublic",
    "ClaimFigure",
    "DuplicatePublic",
    "FigureMatchPublic",
    "FigurePublic",
    "LinkIn",
    "LinkPublic",
    "LinkedPublic",
    "RelatedPublic",
    "text_problem",
]
