"""Webhook payload rendering and Standard Webhooks signatures.

The wire format follows https://www.standardwebhooks.com/: every delivery carries ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``. The signature is an HMAC-SHA256 over
``"{id}.{timestamp}." + body`` keyed with the raw bytes behind a ``whsec_<base64>`` secret, written as
``v1,<base64 digest>``. Several signatures may share one header, separated by single spaces; we emit
one per active secret so that a receiver keeps verifying while a secret is being rotated.

Bodies are plain bytes: whatever is signed here must be sent byte-for-byte unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as _secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a credential
SECRET_BYTES = 32
USER_AGENT = "Claimdesk-Webhooks/1"

# Slack truncates or rejects oversized blocks; keep well inside its limits (3000 chars per text object).
_SLACK_CLAIM_CHARS = 200
_SLACK_SECTION_CHARS = 2900


# --------------------------------------------------------------------------------------------------
# Secrets and signatures
# --------------------------------------------------------------------------------------------------


def new_secret() -> str:
    """Return a fresh signing secret: ``whsec_`` followed by standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """Decode a ``whsec_...`` secret (the prefix is optional) to the HMAC key bytes.

    Raises ValueError for malformed or empty secrets.
    """
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        # Tolerate missing padding, as the reference libraries do.
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not valid base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Build the ``webhook-signature`` header value: one ``v1,<sig>`` per secret, space separated.

    Pass both the outgoing and the incoming secret during a rotation; a receiver holding either one
    finds a matching entry.
    """
    if isinstance(secrets, str):  # a lone string is a Sequence too; signing per character would be wrong
        raise TypeError("sign() takes a sequence of secrets, not a single string")
    if not secrets:
        raise ValueError("at least one secret is required to sign a webhook")
    return " ".join(_signature(secret_bytes(s), msg_id, int(timestamp), body) for s in secrets)


def build_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """All headers a delivery needs (lower-case names). The transport adds Host itself."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --------------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------------


def _compact_json(value: Any) -> bytes:
    # ensure_ascii keeps the body pure ASCII, so odd code points (lone surrogates) cannot break encoding.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, default=str).encode("ascii")


def rfc3339_utc(moment: datetime) -> str:
    """Format a datetime as RFC 3339 in UTC with a ``Z`` suffix (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def render_standard_body(event_type: str, timestamp: datetime, data: Mapping[str, Any]) -> bytes:
    """The Standard Webhooks envelope ``{"type", "timestamp", "data"}`` as compact JSON bytes."""
    return _compact_json({"type": event_type, "timestamp": rfc3339_utc(timestamp), "data": dict(data)})


def _slack_escape(text: str) -> str:
    # Slack mrkdwn treats &, < and > as control characters; everything else is shown literally enough.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rstrip()
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut + "…"


def _event_verb(event_type: str) -> str:
    # "claim.published" -> "published"; "claim.verdict_changed" -> "verdict changed".
    tail = event_type.rsplit(".", 1)[-1]
    return tail.replace("_", " ").replace("-", " ").strip() or event_type


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _usable_link(value: Any) -> str | None:
    # Only plain http(s) URLs can sit inside Slack's <url|label> syntax without breaking it.
    text = _as_str(value)
    if text is None or not text.startswith(("https://", "http://")):
        return None
    if any(ch.isspace() or ch in "|<>" for ch in text):
        return None
    return text


def render_slack_body(event_type: str, data: Mapping[str, Any]) -> bytes:
    """A Slack incoming-webhook message (``text`` fallback plus ``blocks``) for an event.

    ``data`` is normally a claim snapshot (``id``, ``text``, ``state``, ``verdict``, ``claimant``,
    ``links``); every key is optional, so pings and unknown events still render something useful.
    """
    data = data if isinstance(data, Mapping) else {}
    claim_id = _as_str(data.get("id"))
    claim_text = _as_str(data.get("text"))
    state = _as_str(data.get("state"))
    claimant = _as_str(data.get("claimant"))
    raw_verdict = data.get("verdict")
    verdict: Mapping[str, Any] = raw_verdict if isinstance(raw_verdict, Mapping) else {}
    rating = _as_str(verdict.get("rating"))
    verdict_summary = _as_str(verdict.get("summary"))
    raw_links = data.get("links")
    links: Mapping[str, Any] = raw_links if isinstance(raw_links, Mapping) else {}
    link = _usable_link(links.get("public")) or _usable_link(links.get("api"))

    if claim_id is None and claim_text is None and "endpoint_id" in data:
        headline = f"Claimdesk test ping for endpoint {_as_str(data.get('endpoint_id')) or '?'}"
    elif claim_id is not None or claim_text is not None:
        headline = f"Claim #{claim_id}" if claim_id is not None else "Claim"
        headline += f" {_event_verb(event_type)}"
        if rating:
            headline += f" — {rating}"
        if claim_text:
            headline += f": «{_shorten(claim_text, _SLACK_CLAIM_CHARS)}»"
    else:
        headline = f"Claimdesk event {event_type}"

    # Slack parses the top-level text as mrkdwn as well, so it needs the same escaping.
    fallback = _slack_escape(headline) + (f" {_slack_escape(link)}" if link else "")

    section = _slack_escape(headline)
    if link:
        section = f"<{link.replace('&', '&amp;')}|{section}>" if len(section) < 300 else f"{section}\n{link}"
    if verdict_summary:
        section += "\n>" + _slack_escape(_shorten(verdict_summary, 600))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _shorten_block(section)}},
    ]
    context = [f"`{_slack_escape(event_type)}`"]
    if state:
        context.append(f"state: {_slack_escape(state)}")
    if claimant:
        context.append(f"claimant: {_slack_escape(_shorten(claimant, 80))}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return _compact_json({"text": fallback, "blocks": blocks})


def _shorten_block(text: str) -> str:
    return text if len(text) <= _SLACK_SECTION_CHARS else text[: _SLACK_SECTION_CHARS - 1] + "…"
