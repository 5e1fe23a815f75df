"""Every table, imported in one place so Alembic's autogenerate sees the whole schema."""

from sqlmodel import SQLModel

from app.audit.models import AuditEvent, IdempotencyRecord, OutboxEvent
from app.auth.models import ApiKey, User
from app.claims.models import Claim, ClaimApproval, ClaimCorrection, ClaimReviewer, ClaimTag, Comment
from app.evidence.models import Evidence
from app.intake.models import Article, ArticleCandidate, ClaimImport, ClaimLink
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "Article",
    "ArticleCandidate",
    "AuditEvent",
    "Claim",
    "ClaimApproval",
    "ClaimCorrection",
    "ClaimImport",
    "ClaimLink",
    "ClaimReviewer",
    "ClaimTag",
    "Comment",
    "Evidence",
    "IdempotencyRecord",
    "OutboxEvent",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
