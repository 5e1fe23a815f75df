"""Delivery attempts against real loopback receivers (127.0.0.0/8 is explicitly allowed here)."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from standardwebhooks.webhooks import Webhook

from app.config import Settings
from app.webhooks import signing, ssrf
from app.webhooks.sender import (
    MAX_RETRY_AFTER_SECONDS,
    AttemptResult,
    create_client,
    next_delay,
    parse_retry_after,
    send_attempt,
)

if TYPE_CHECKING:  # the fixtures' classes, for annotations only (tests/webhooks is not a package)
    from contextlib import AbstractContextManager

    from .conftest import Receiver, ResetServer, ScriptedServer, TlsReceiver

    Scripted = Callable[[bytes], AbstractContextManager[ScriptedServer]]

SECRET = signing.new_secret()
BODY = signing.render_standard_body("claim.published", datetime.now(UTC), {"id": 1, "text": "Hello"})


def _headers() -> dict[str, str]:
    return signing.build_headers([SECRET], "msg_test", int(time.time()), BODY)


def attempt(url: str, settings: Settings, *, verify: ssl.SSLContext | None = None) -> AttemptResult:
    async def go() -> AttemptResult:
        async with create_client(verify=verify) as client:
            return await send_attempt(client, url=url, headers=_headers(), body=BODY, settings=settings)

    return asyncio.run(go())


@pytest.fixture
def loopback(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allowed_cidrs=["127.0.0.0/8"], webhook_timeout=2.0)


def test_success_delivers_a_verifiable_request(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/ok?src=test"), loopback)
    assert result.outcome == "success"
    assert result.ok
    assert result.status_code == 200
    assert result.response_excerpt == "thanks"
    assert result.error is None
    assert result.retry_after_seconds is None
    assert 0 <= result.latency_ms < 2000
    [seen] = receiver.seen
    assert seen.path == "/ok?src=test"
    assert seen.body == BODY
    assert seen.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert seen.headers["user-agent"] == "Claimdesk-Webhooks/1"
    assert seen.headers["accept-encoding"] == "identity"
    assert Webhook(SECRET).verify(seen.body, seen.headers)["data"]["text"] == "Hello"


def test_cookies_set_by_a_receiver_are_never_sent_again(receiver: Receiver, loopback: Settings) -> None:
    """One client serves every endpoint, and different receivers can share an address (a hosted
    service): a cookie one of them sets must not travel with anyone's later deliveries."""

    async def go() -> None:
        async with create_client() as client:
            for path in ("/cookie", "/ok", "/cookie", "/ok"):
                result = await send_attempt(
                    client, url=receiver.url(path), headers=_headers(), body=BODY, settings=loopback
                )
                assert result.outcome == "success"

    asyncio.run(go())
    assert receiver.paths() == ["/cookie", "/ok", "/cookie", "/ok"]
    assert all("cookie" not in seen.headers for seen in receiver.seen)


def test_any_2xx_is_success(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/accepted"), loopback)
    assert (result.outcome, result.status_code, result.response_excerpt) == ("success", 202, "")


def test_server_error_is_failure_with_excerpt(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/fail"), loopback)
    assert result.outcome == "failure"
    assert result.status_code == 500
    assert result.error == "HTTP 500"
    assert result.response_excerpt == "boom \ufffd bytes"


def test_503_with_retry_after_seconds(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/busy"), loopback)
    assert (result.outcome, result.status_code, result.retry_after_seconds) == ("failure", 503, 7.0)


def test_503_with_retry_after_date(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/busy-date"), loopback)
    assert result.status_code == 503
    assert result.retry_after_seconds is not None
    assert 110 <= result.retry_after_seconds <= 121


def test_429_is_failure_with_retry_after(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/slow-down"), loopback)
    assert (result.outcome, result.status_code, result.retry_after_seconds) == ("failure", 429, 30.0)
    assert result.error == "HTTP 429"


def test_410_means_gone(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/gone"), loopback)
    assert (result.outcome, result.status_code, result.response_excerpt) == ("gone", 410, "unsubscribed")


def test_redirect_is_not_followed(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/redirect"), loopback)
    assert result.outcome == "failure"
    assert result.status_code == 302
    assert result.error == "redirect not followed (302)"
    assert receiver.paths() == ["/redirect"]  # the Location target was never requested


def test_hanging_receiver_times_out(receiver: Receiver, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(webhook_allowed_cidrs=["127.0.0.0/8"], webhook_timeout=0.5)
    started = time.monotonic()
    result = attempt(receiver.url("/hang"), settings)
    elapsed = time.monotonic() - started
    assert result.outcome == "failure"
    assert result.error == "timeout"
    assert result.status_code is None
    assert elapsed < 1.0
    assert 400 <= result.latency_ms < 1000


def test_slow_drip_body_cannot_outlast_the_deadline(receiver: Receiver, make_settings: Callable[..., Settings]) -> None:
    # Each byte arrives well within any per-read timeout; only a total deadline stops this.
    settings = make_settings(webhook_allowed_cidrs=["127.0.0.0/8"], webhook_timeout=0.5)
    started = time.monotonic()
    result = attempt(receiver.url("/drip"), settings)
    assert time.monotonic() - started < 1.0
    assert (result.outcome, result.error) == ("failure", "timeout")


def test_large_response_is_capped(receiver: Receiver, loopback: Settings) -> None:
    result = attempt(receiver.url("/big"), loopback)
    assert result.outcome == "success"
    assert result.response_excerpt == "a" * 1024


def test_connection_refused(closed_port: int, loopback: Settings) -> None:
    result = attempt(f"http://127.0.0.1:{closed_port}/x", loopback)
    assert (result.outcome, result.status_code, result.error) == ("failure", None, "connection refused")


def test_connection_reset(reset_server: ResetServer, loopback: Settings) -> None:
    result = attempt(f"http://127.0.0.1:{reset_server.port}/x", loopback)
    assert reset_server.accepted == 1
    assert result.outcome == "failure"
    assert result.status_code is None
    assert result.error in {"connection reset", "connection closed without a response"}


def test_a_chunked_answer_after_an_informational_one_is_read(loopback: Settings, scripted: Scripted) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nthank\r\n3\r\ns!!\r\n0\r\n\r\n"
    )
    with scripted(answer) as server:
        result = attempt(f"http://127.0.0.1:{server.port}/in?x=1", loopback)
    assert (result.outcome, result.status_code, result.response_excerpt) == ("success", 200, "thanks!!")
    [request] = server.requests
    head = request.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"post /in?x=1 http/1.1\r\n")
    assert b"\r\nconnection: close" in head and b"\r\naccept-encoding: identity" in head
    assert f"\r\ncontent-length: {len(BODY)}".encode() in head and request.endswith(BODY)


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 100 Continue\r\n\r\n"], ids=["nothing", "only a 1xx"])
def test_closed_without_an_answer(loopback: Settings, scripted: Scripted, answer: bytes) -> None:
    with scripted(answer) as server:
        result = attempt(f"http://127.0.0.1:{server.port}/x", loopback)
    assert len(server.requests) == 1
    assert (result.outcome, result.status_code, result.error) == (
        "failure",
        None,
        "connection closed without a response",
    )


@pytest.mark.parametrize(
    "answer",
    [b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
    ids=["garbage", "truncated body"],
)
def test_a_malformed_answer_is_a_protocol_error(loopback: Settings, scripted: Scripted, answer: bytes) -> None:
    with scripted(answer) as server:
        result = attempt(f"http://127.0.0.1:{server.port}/x", loopback)
    assert result.outcome == "failure"
    assert result.error is not None and result.error.startswith("protocol error: "), result.error


def test_blocked_target_never_connects(receiver: Receiver, make_settings: Callable[..., Settings]) -> None:
    result = attempt(receiver.url("/ok"), make_settings())  # nothing allowed: loopback is off limits
    assert result.outcome == "failure"
    assert result.error is not None
    assert result.error.startswith("blocked: ")
    assert "loopback" in result.error
    assert receiver.seen == []


def test_dns_failure_is_a_failure(monkeypatch: pytest.MonkeyPatch, loopback: Settings) -> None:

    async def no_answer(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(ssrf, "_resolve", no_answer)
    result = attempt("https://missing.example/x", loopback)
    assert result.outcome == "failure"
    assert result.error == "dns: could not resolve missing.example: Name or service not known"


def _route_name_to_loopback(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    async def fake_resolve(host: str, port: int) -> list[str]:
        assert host == name
        return ["127.0.0.1"]

    monkeypatch.setattr(ssrf, "_resolve", fake_resolve)


def test_https_uses_checked_ip_with_name_for_sni_and_host(
    tls_receiver: TlsReceiver, loopback: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _route_name_to_loopback(monkeypatch, "hooks.test")
    trust = ssl.create_default_context(cafile=str(tls_receiver.ca_file))
    receiver = tls_receiver.receiver
    result = attempt(receiver.url("/ok", host="hooks.test"), loopback, verify=trust)
    assert result.outcome == "success", result.error
    assert receiver.sni_names == ["hooks.test"]
    assert receiver.seen[0].headers["host"] == f"hooks.test:{receiver.port}"


def test_https_certificate_must_match_the_name(
    tls_receiver: TlsReceiver, loopback: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _route_name_to_loopback(monkeypatch, "other.test")
    trust = ssl.create_default_context(cafile=str(tls_receiver.ca_file))
    receiver = tls_receiver.receiver
    result = attempt(receiver.url("/ok", host="other.test"), loopback, verify=trust)
    assert result.outcome == "failure"
    assert result.error is not None
    assert result.error.startswith("tls certificate error")
    assert receiver.seen == []


def test_https_untrusted_certificate_fails(tls_receiver: TlsReceiver, loopback: Settings) -> None:
    result = attempt(tls_receiver.receiver.url("/ok"), loopback)  # default trust store
    assert result.outcome == "failure"
    assert result.error is not None
    assert result.error.startswith("tls certificate error")


# --------------------------------------------------------------------------------------------------
# Retry-After parsing and the retry schedule
# --------------------------------------------------------------------------------------------------


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("99999999") == MAX_RETRY_AFTER_SECONDS
    for junk in [None, "", "soon", "-5", "1.5e3", "Mon, 99 Foo 2025"]:
        assert parse_retry_after(junk) is None


SCHEDULE = [5.0, 300.0, 1800.0]


@pytest.mark.parametrize("attempt_number", [1, 2, 3])
def test_next_delay_jitter_stays_within_twenty_percent(attempt_number: int) -> None:
    rng = random.Random(1234)
    base = SCHEDULE[attempt_number - 1]
    delays = [next_delay(SCHEDULE, attempt_number, None, rng) for _ in range(500)]
    values = [d for d in delays if d is not None]
    assert len(values) == 500
    assert all(base * 0.8 <= d <= base * 1.2 for d in values)
    assert max(values) - min(values) > base * 0.2  # it really does jitter


def test_next_delay_edges() -> None:
    rng = random.Random(7)
    assert next_delay(SCHEDULE, 4, None, rng) is None  # 3 gaps -> 4 attempts
    assert next_delay(SCHEDULE, 4, 10.0, rng) is None  # Retry-After does not extend the schedule
    assert next_delay([], 1, None, rng) is None
    assert next_delay([0.0], 1, None, rng) == 0.0
    assert next_delay([-3.0], 1, None, rng) == 0.0
    with pytest.raises(ValueError):
        next_delay(SCHEDULE, 0, None, rng)


def test_next_delay_respects_retry_after() -> None:
    rng = random.Random(99)
    assert next_delay(SCHEDULE, 1, 60.0, rng) == 60.0
    short = next_delay(SCHEDULE, 2, 1.0, rng)
    assert short is not None
    assert 240.0 <= short <= 360.0
    assert next_delay(SCHEDULE, 1, 10 * 24 * 3600.0, rng) == MAX_RETRY_AFTER_SECONDS
    capped: Any = next_delay(SCHEDULE, 1, float("inf"), rng)
    assert 4.0 <= capped <= 6.0


def test_next_delay_is_deterministic_with_a_seeded_rng() -> None:
    first = [next_delay(SCHEDULE, k, None, random.Random(5)) for k in (1, 2, 3)]
    second = [next_delay(SCHEDULE, k, None, random.Random(5)) for k in (1, 2, 3)]
    assert first == second


def test_default_rng_works() -> None:
    delay = next_delay(SCHEDULE, 1)
    assert delay is not None
    assert 4.0 <= delay <= 6.0
    assert timedelta(seconds=delay) > timedelta(0)
