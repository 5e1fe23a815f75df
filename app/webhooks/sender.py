"""One delivery attempt over HTTP, and the retry schedule between attempts.

:func:`send_attempt` never raises for anything the network or the receiver does: refused targets,
DNS failures, timeouts, resets, TLS problems and non-2xx answers all come back as an
:class:`AttemptResult` with ``outcome="failure"`` (or ``"gone"`` for 410) and a short ``error``.

The connection goes to the address that :func:`app.webhooks.ssrf.resolve_and_check` approved, never
to whatever a second DNS lookup might return. The original name travels in the Host header and, for
https, as the TLS server name (SNI), which is also the name the certificate is verified against.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import http.cookiejar
import logging
import math
import random
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

from app.webhooks.ssrf import BlockedTarget, UnresolvableTarget, WebhookSettings, resolve_and_check

logger = logging.getLogger(__name__)

Outcome = Literal["success", "failure", "gone"]

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_BYTES = 1024
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
JITTER = 0.2


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    status_code: int | None
    latency_ms: int
    response_excerpt: str
    error: str | None
    retry_after_seconds: float | None

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


def create_client(
    settings: WebhookSettings | None = None, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """The AsyncClient :func:`send_attempt` expects. Share one per worker process.

    * ``trust_env=False``: proxy variables and .netrc must not reroute or decorate deliveries (a proxy
      would also resolve the name again, defeating the address check).
    * ``follow_redirects=False``: a 3xx is a failed attempt, never a second hop.
    * no keep-alive: connections are keyed by IP, so a pooled TLS connection verified for one name
      could otherwise carry a request for another name served from the same address.
    * no cookies: a jar whose policy accepts no domain, so a cookie set by one receiver is neither
      kept nor sent with later deliveries (to it, or to another receiver at the same address).

    ``verify`` is passed to httpx: an SSLContext for a private CA, or True for the default bundle.
    """
    timeout = settings.webhook_timeout if settings is not None else 15.0
    return httpx.AsyncClient(
        trust_env=False,
        verify=verify,
        follow_redirects=False,
        http2=False,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
        cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
    )


# --------------------------------------------------------------------------------------------------
# Retry-After and error classification
# --------------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_SECONDS)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _describe_transport_error(exc: BaseException) -> str:
    chain = _exception_chain(exc)
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, ConnectionResetError):
            return "connection reset"
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"tls certificate error: {item.verify_message or item.reason or item}"
        if isinstance(item, ssl.SSLError):
            return f"tls error: {item.reason or item}"
        if isinstance(item, OSError) and item.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable"
    text = " ".join(str(item) for item in chain).lower()
    if "connection refused" in text:
        return "connection refused"
    if "connection reset" in text:
        return "connection reset"
    if isinstance(exc, httpx.RemoteProtocolError):
        if "disconnected" in text:
            return "connection closed without a response"
        return f"protocol error: {exc}"
    if isinstance(exc, httpx.ConnectError):
        return f"connect error: {exc}" if str(exc) else "connect error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# The attempt
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Received:
    status_code: int
    body: bytes
    retry_after: str | None


async def _post(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], body: bytes, settings: WebhookSettings
) -> _Received:
    target = await resolve_and_check(url, settings)
    request_headers = {k: v for k, v in headers.items() if k.lower() not in {"host", "accept-encoding"}}
    request_headers["host"] = target.host_header
    # Ask for an uncompressed answer: the body is read raw and capped, never inflated.
    request_headers["accept-encoding"] = "identity"
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
    async with client.stream(
        "POST",
        target.connect_url,
        content=body,
        headers=request_headers,
        follow_redirects=False,
        timeout=httpx.Timeout(settings.webhook_timeout),
        extensions=extensions,
    ) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_RESPONSE_BYTES:
                break
        return _Received(
            status_code=response.status_code,
            body=b"".join(chunks)[:MAX_RESPONSE_BYTES],
            retry_after=response.headers.get("retry-after"),
        )


async def send_attempt(
    client: httpx.AsyncClient,
    *,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    settings: WebhookSettings,
) -> AttemptResult:
    """POST ``body`` to ``url`` once, within ``settings.webhook_timeout`` seconds in total.

    The deadline covers name resolution, connecting, TLS, sending and reading the (capped) response,
    so a receiver that trickles bytes cannot hold the attempt open.
    """
    started = time.monotonic()

    def finish(
        outcome: Outcome,
        *,
        status: int | None = None,
        excerpt: str = "",
        error: str | None = None,
        retry_after: float | None = None,
    ) -> AttemptResult:
        latency = round((time.monotonic() - started) * 1000)
        return AttemptResult(outcome, status, latency, excerpt, error, retry_after)

    try:
        async with asyncio.timeout(settings.webhook_timeout):
            received = await _post(client, url, headers, body, settings)
    except BlockedTarget as exc:
        return finish("failure", error=f"blocked: {exc.reason}")
    except UnresolvableTarget as exc:
        return finish("failure", error=f"dns: {exc.reason}")
    except (TimeoutError, httpx.TimeoutException):
        return finish("failure", error="timeout")
    except (httpx.TransportError, OSError) as exc:
        return finish("failure", error=_describe_transport_error(exc))
    except httpx.HTTPError as exc:
        return finish("failure", error=f"http error: {exc}")
    except Exception as exc:  # keep the worker alive; this is a bug worth seeing in the logs
        logger.exception("unexpected error while delivering a webhook")
        return finish("failure", error=f"unexpected error: {type(exc).__name__}")

    status = received.status_code
    excerpt = received.body[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    if 200 <= status < 300:
        return finish("success", status=status, excerpt=excerpt)
    retry_after = parse_retry_after(received.retry_after)
    if status == 410:
        return finish("gone", status=status, excerpt=excerpt, error="HTTP 410", retry_after=retry_after)
    error = f"redirect not followed ({status})" if 300 <= status < 400 else f"HTTP {status}"
    return finish("failure", status=status, excerpt=excerpt, error=error, retry_after=retry_after)


# --------------------------------------------------------------------------------------------------
# Retry schedule
# --------------------------------------------------------------------------------------------------


def next_delay(
    schedule: list[float],
    attempt_number: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait after failed attempt ``attempt_number`` (1-based), or None to give up.

    A schedule of N gaps allows N + 1 attempts. Each gap gets ±20 % jitter and is raised to the
    receiver's Retry-After when that is longer (Retry-After is capped at 24 hours).
    """
    if attempt_number < 1:
        raise ValueError("attempt_number is 1-based")
    if attempt_number > len(schedule):
        return None
    base = max(float(schedule[attempt_number - 1]), 0.0)
    factor = (rng or random).uniform(1.0 - JITTER, 1.0 + JITTER)
    delay = max(base * factor, 0.0)
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS))
    return delay
