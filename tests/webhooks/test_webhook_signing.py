"""Signatures are checked with the reference ``standardwebhooks`` library, not with our own code."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.webhooks import signing


def _now() -> int:
    return int(time.time())


def test_new_secret_shape_and_uniqueness() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second
    assert first.startswith("whsec_")
    raw = base64.b64decode(first.removeprefix("whsec_"), validate=True)
    assert len(raw) == 32
    assert signing.secret_bytes(first) == raw
    assert signing.secret_bytes(first.removeprefix("whsec_")) == raw


@pytest.mark.parametrize("bad", ["whsec_", "whsec_***notbase64***", ""])
def test_secret_bytes_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        signing.secret_bytes(bad)


def test_sign_requires_a_sequence_of_secrets() -> None:
    with pytest.raises(TypeError):
        signing.sign(signing.new_secret(), "msg_1", _now(), b"{}")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        signing.sign([], "msg_1", _now(), b"{}")


def test_signature_matches_reference_signer() -> None:
    secret = signing.new_secret()
    ts = _now()
    body = b'{"type":"claim.published","data":{}}'
    ours = signing.sign([secret], "msg_abc", ts, body)
    theirs = Webhook(secret).sign("msg_abc", datetime.fromtimestamp(ts, tz=UTC), body.decode())
    assert ours == theirs


def test_headers_verify_with_reference_library() -> None:
    secret = signing.new_secret()
    ts = _now()
    body = signing.render_standard_body("claim.published", datetime.now(UTC), {"id": 12, "text": "é ≠ e"})
    headers = signing.build_headers([secret], "msg_2a", ts, body)
    assert headers["webhook-id"] == "msg_2a"
    assert headers["webhook-timestamp"] == str(ts)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "Claimdesk-Webhooks/1"
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "claim.published"
    assert payload["data"]["text"] == "é ≠ e"


def test_rotation_header_verifies_for_old_and_new_secret_holders() -> None:
    old, new, stranger = signing.new_secret(), signing.new_secret(), signing.new_secret()
    body = signing.render_standard_body("claim.updated", datetime.now(UTC), {"id": 3})
    headers = signing.build_headers([old, new], "msg_rot", _now(), body)
    parts = headers["webhook-signature"].split(" ")
    assert len(parts) == 2
    assert all(p.startswith("v1,") for p in parts)
    # The reference verifier tries each space-separated entry in turn.
    assert Webhook(old).verify(body, headers) == json.loads(body)
    assert Webhook(new).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)


def test_tampering_and_stale_timestamps_fail_verification() -> None:
    secret = signing.new_secret()
    body = signing.render_standard_body("claim.updated", datetime.now(UTC), {"id": 3})
    headers = signing.build_headers([secret], "msg_t", _now(), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b'"id":3', b'"id":4'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"})
    stale = _now() - 3600
    old_headers = signing.build_headers([secret], "msg_t", stale, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, old_headers)


def test_standard_body_is_compact_with_utc_timestamp() -> None:
    moment = datetime(2024, 5, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    body = signing.render_standard_body("claim.published", moment, {"id": 1, "verdict": None})
    assert b" " not in body
    decoded = json.loads(body)
    assert list(decoded) == ["type", "timestamp", "data"]
    assert decoded["timestamp"] == "2024-05-01T12:30:05.123Z"
    assert decoded["data"] == {"id": 1, "verdict": None}
    naive = json.loads(signing.render_standard_body("x", datetime(2024, 1, 1), {}))
    assert naive["timestamp"] == "2024-01-01T00:00:00.000Z"
    # Non-ASCII text is escaped, so the body is plain ASCII on the wire.
    body.decode("ascii")
    signing.render_standard_body("x", moment, {"t": "\ud800 lone surrogate"}).decode("ascii")


SNAPSHOT = {
    "id": 12,
    "text": "The moon landing was filmed in a studio in 1969 & <nobody> noticed " + "really " * 60,
    "state": "published",
    "verdict": {"rating": "False", "summary": "Telemetry, samples and independent tracking confirm it."},
    "claimant": "Anonymous post",
    "links": {"api": "https://claimdesk.example/api/claims/12", "public": "https://claimdesk.example/c/12"},
}


def test_slack_body_for_a_claim() -> None:
    message = json.loads(signing.render_slack_body("claim.published", SNAPSHOT))
    text = message["text"]
    assert text.startswith("Claim #12 published — False: «The moon landing was filmed")
    assert "…»" in text
    assert len(text) < 400
    assert "https://claimdesk.example/c/12" in text
    assert "&amp; &lt;nobody&gt;" in text
    section = message["blocks"][0]["text"]["text"]
    assert section.startswith("<https://claimdesk.example/c/12|Claim #12 published — False")
    assert "&amp; &lt;nobody&gt;" in section
    assert "Telemetry, samples" in section
    context = message["blocks"][1]["elements"][0]["text"]
    assert "claim.published" in context
    assert "state: published" in context
    assert "claimant: Anonymous post" in context


def test_slack_body_tolerates_partial_and_foreign_data() -> None:
    ping = json.loads(signing.render_slack_body("webhook.ping", {"endpoint_id": "ep_9"}))
    assert ping["text"] == "Claimdesk test ping for endpoint ep_9"
    empty = json.loads(signing.render_slack_body("something.else", {}))
    assert empty["text"] == "Claimdesk event something.else"
    bare = {"id": 5, "verdict": None, "links": {"api": "https://x.example/api/claims/5"}}
    no_verdict = json.loads(signing.render_slack_body("claim.created", bare))
    assert no_verdict["text"] == "Claim #5 created https://x.example/api/claims/5"
    odd = {"id": 7, "text": "t", "verdict": "not-a-dict", "links": {"public": "javascript:alert(1)"}}
    weird = json.loads(signing.render_slack_body("claim.updated", odd))
    assert weird["text"] == "Claim #7 updated: «t»"
    assert "javascript" not in json.dumps(weird)
