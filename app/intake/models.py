"""Intake tables: pasted articles, the candidates extracted from them, hand-made links between
related claims, the term index that finds likely duplicates, and the record of rows brought in by
``claimdesk import``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Article(SQLModel, table=True):
    """A source document as submitted; candidate offsets index ``text`` exactly as stored."""

    __tablename__ = "articles"
    __table_args__ = (sa.Index("ix_articles_submitted_by_id", "submitted_by", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2048), nullable=True))
    outlet: str | None = Field(default=None, sa_column=sa.Column(sa.String(300), nullable=True))
    published_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    language: str | None = Field(default=None, sa_column=sa.Column(sa.String(35), nullable=True))
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    sentences: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    submitted_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))


class ArticleCandidate(SQLModel, table=True):
    """One check-worthy sentence of an article (``data`` is the extractor's ``Candidate.to_dict()``).

    Accepting it turns it into a claim: ``accepted_claim_id`` is set once, and is unique, so a claim
    has at most one source span and a candidate at most one claim."""

    __tablename__ = "article_candidates"
    __table_args__ = (
        sa.UniqueConstraint("article_id", "index"),
        sa.UniqueConstraint("accepted_claim_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("articles.id"), nullable=False))
    index: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    start: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    end: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    accepted_claim_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), nullable=True)
    )
    accepted_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    accepted_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))


class ClaimLink(SQLModel, table=True):
    """Two claims an editor marked as related. Stored once per pair, the lower id first."""

    __tablename__ = "claim_links"
    __table_args__ = (
        sa.CheckConstraint("claim_a_id < claim_b_id", name="ordered"),
        sa.Index("ix_claim_links_claim_b_id", "claim_b_id"),
    )

    claim_a_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), primary_key=True))
    claim_b_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), primary_key=True))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(500), nullable=True))
    linked_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))


class ClaimTerm(SQLModel, table=True):
    """A claim's distinctive words, hashed (at most ``related.MAX_TERMS`` per claim). Looking up a new
    claim's terms finds the claims that share them with a few bounded index reads, so checking for
    duplicates costs the same on an empty desk and on a million claims."""

    __tablename__ = "claim_terms"
    __table_args__ = (sa.Index("ix_claim_terms_claim_id", "claim_id"),)

    term: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    claim_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), primary_key=True, autoincrement=False)
    )


class ClaimImport(SQLModel, table=True):
    """A row brought in by ``claimdesk import``: its stable key makes a second run skip it."""

    __tablename__ = "claim_imports"
    __table_args__ = (sa.UniqueConstraint("key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    claim_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("claims.id"), nullable=False, index=True))
    source: str | None = Field(default=None, sa_column=sa.Column(sa.String(300), nullable=True))
    line: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    imported_by: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False))
