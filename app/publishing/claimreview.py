"""schema.org ClaimReview for a published verdict.

Built from the snapshot taken when the claim was last published, so a claim that is reopened or
being re-checked keeps describing what the public saw, marked as under review
(``creativeWorkStatus``). Earlier verdicts replaced by a correction are listed under ``correction``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.claims.models import Claim, ClaimCorrection
from app.claims.states import State
from app.config import Settings
from app.publishing.ratings import scale_for

CLAIM_REVIEWED_MAX = 75


def shorten(text: str, limit: int = CLAIM_REVIEWED_MAX) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis when longer."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


@dataclass(frozen=True)
class ShownClaim:
    """The claim as it was when last published (the live row may hold unapproved edits)."""

    text: str
    claimant: str | None
    appearance_url: str | None
    appeared_at: datetime | None
    outlet: str | None
    language: str | None


def shown_claim(claim: Claim) -> ShownClaim:
    seen = (claim.published_verdict or {}).get("claim") or {}

    def pick(name: str) -> Any:
        return seen[name] if name in seen else getattr(claim, name)

    appeared = pick("appeared_at")
    if isinstance(appeared, str):
        appeared = datetime.fromisoformat(appeared)
    return ShownClaim(
        text=pick("text"),
        claimant=pick("claimant"),
        appearance_url=pick("appearance_url"),
        appeared_at=appeared,
        outlet=pick("outlet"),
        language=pick("language"),
    )


def under_review(claim: Claim) -> bool:
    """Reopened or back in the queue for a re-check. A re-check that ended in rejection (out of scope
    now) leaves the last published verdict standing, not under review for ever."""
    return claim.state not in (State.published, State.rejected)


def public_url(settings: Settings, claim_id: int) -> str:
    return f"{settings.public_base_url.rstrip('/')}/public/fact-checks/{claim_id}"


def _date(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.date().isoformat()


def build(claim: Claim, corrections: list[ClaimCorrection], settings: Settings) -> dict[str, Any]:
    snapshot = claim.published_verdict or {}
    assert claim.id is not None
    rating = scale_for(settings.rating_scale).get(snapshot.get("rating") or "")
    label = snapshot.get("label") or (rating.label if rating else snapshot.get("rating"))
    value = snapshot.get("rating_value") or (rating.rating_value if rating else None)
    shown = shown_claim(claim)
    item: dict[str, Any] = {"@type": "Claim"}
    if shown.claimant:
        item["author"] = {
            "@type": "Person" if _looks_personal(shown.claimant) else "Organization",
            "name": shown.claimant,
        }
    if shown.appeared_at:
        item["datePublished"] = _date(shown.appeared_at)
    if shown.appearance_url:
        item["appearance"] = {"@type": "CreativeWork", "url": shown.appearance_url}
        item["firstAppearance"] = {"@type": "CreativeWork", "url": shown.appearance_url}
    review: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "url": public_url(settings, claim.id),
        "claimReviewed": shorten(shown.text),
        "author": {"@type": "Organization", "name": settings.org_name, "url": settings.org_url_or_base},
        "datePublished": _date(claim.first_published_at or claim.published_at),
        "reviewRating": {
            "@type": "Rating",
            "ratingValue": value,
            "bestRating": 5,
            "worstRating": 1,
            "alternateName": label,
            "name": label,
        },
        "itemReviewed": item,
        "creativeWorkStatus": "UnderReview" if under_review(claim) else "Published",
    }
    if claim.published_at and claim.first_published_at and claim.published_at != claim.first_published_at:
        review["dateModified"] = _date(claim.published_at)
    if shown.language:
        review["inLanguage"] = shown.language
    if snapshot.get("summary"):
        review["reviewBody"] = snapshot["summary"]
    done = [c for c in corrections if c.republished_at is not None]
    if done:
        review["correction"] = [
            {
                "@type": "CorrectionComment",
                "text": f"Earlier rating: {c.previous_verdict.get('label') or c.previous_verdict.get('rating')}. "
                f"Reopened because: {c.reason}",
                "datePublished": _date(c.republished_at),
            }
            for c in done
        ]
    return review


_ORG_WORDS = (
    "ministry",
    "agency",
    "office",
    "party",
    "government",
    "council",
    "army",
    "police",
    "company",
    "committee",
    "commission",
    "department",
    "authority",
    "operator",
    "statement",
    "group",
    "news",
)


def _looks_personal(claimant: str) -> bool:
    lowered = claimant.lower()
    return not any(word in lowered for word in _ORG_WORDS)
