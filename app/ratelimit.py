"""Per-key limits on writes (CLAIMDESK_RATE_LIMIT_WRITES), in process memory.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one number): for a
limit of N per window W, each request moves the key's "theoretical arrival time" (TAT) forward by
W/N seconds; a request is admitted while TAT stays within W of now. So a fresh key may spend its
whole budget at once, then gets one more request every W/N seconds. Each check is O(1) and a key
costs one float.

Memory stays bounded: a key whose TAT is in the past has its full budget back, which is exactly
what a key we never saw has, so it can be forgotten without changing any answer. Keys are kept in
least-recently-used order and each check drops a few idle ones from the old end; past ``max_keys``
the least recently used key is dropped even if not idle (it then gets a fresh budget, erring on the
side of letting a request through).

Answers carry the fields of draft-ietf-httpapi-ratelimit-headers-11 (May 2026):
``RateLimit-Policy: "writes";q=N;w=W`` and ``RateLimit: "writes";r=<left>;t=<seconds>``, plus
``Retry-After`` on 429.

The budget is per process: with several server processes (``--workers`` or several nodes), each
enforces its own, so a key may make up to N times the process count. See docs/operations.md.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from app.clock import clock
from app.errors import TooManyRequests

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
POLICY_NAME = "writes"
STATE_HEADERS = "rate_limit_headers"  # request.state attribute the middleware copies onto the answer

_UNITS = {"second": 1, "minute": 60, "hour": 3600}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int  # seconds

    def __str__(self) -> str:
        unit = {v: k for k, v in _UNITS.items()}[self.window]
        return f"{self.limit}/{unit}"


def parse_rate(text: str) -> Rate | None:
    """``"N/second"``, ``"N/minute"`` or ``"N/hour"``; ``""`` or ``"0"`` means no limit (None)."""
    if text.strip() in ("", "0"):
        return None
    match = _RATE.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a rate: use N/second, N/minute or N/hour (N at least 1), or 0 to turn the limit off"
        )
    limit = int(match.group(1))
    if limit < 1:
        raise ValueError(f"{text!r}: use N/second, N/minute or N/hour with N at least 1, or 0 to turn the limit off")
    return Rate(limit, _UNITS[match.group(2).lower()])


def _monotonic_with_test_clock() -> float:
    # Monotonic, so a wall-clock step cannot refill or drain budgets; plus the shared test clock's
    # offset, so tests move time with clock.advance() instead of sleeping.
    return time.monotonic() + clock.offset.total_seconds()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int  # requests left right now
    reset_after: int  # whole seconds until the budget is full again
    retry_after: int  # whole seconds until the next request can pass (0 when allowed)


class RateLimiter:
    """GCRA per key; thread-safe (sync dependencies run on the server's thread pool)."""

    def __init__(
        self,
        rate: Rate,
        *,
        now: Callable[[], float] = _monotonic_with_test_clock,
        max_keys: int = 100_000,
        evict_per_check: int = 4,
    ) -> None:
        self.rate = rate
        self._interval = rate.window / rate.limit
        self._now = now
        self._max_keys = max_keys
        self._evict_per_check = evict_per_check
        self._tat: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tat)

    def hit(self, key: str) -> Decision:
        window, interval = float(self.rate.window), self._interval
        with self._lock:
            now = self._now()
            tat = max(self._tat.get(key, now), now)
            new_tat = tat + interval
            if new_tat - now > window + 1e-9:
                # Refused: nothing is spent, so a client hammering at 429 does not dig itself deeper.
                wait = new_tat - window - now
                return Decision(False, 0, math.ceil(tat - now), max(1, math.ceil(wait)))
            self._tat[key] = new_tat
            self._tat.move_to_end(key)
            self._evict(now)
        left = int((window - (new_tat - now)) / interval + 1e-9)
        return Decision(True, left, math.ceil(new_tat - now), 0)

    def _evict(self, now: float) -> None:
        tats = self._tat
        for _ in range(self._evict_per_check):
            oldest = next(iter(tats))
            if tats[oldest] > now and len(tats) <= self._max_keys:
                break
            del tats[oldest]
            if not tats:
                break

    def policy_header(self) -> str:
        return f'"{POLICY_NAME}";q={self.rate.limit};w={self.rate.window}'

    def headers(self, decision: Decision) -> dict[str, str]:
        t = decision.reset_after if decision.allowed else decision.retry_after
        found = {
            "RateLimit-Policy": self.policy_header(),
            "RateLimit": f'"{POLICY_NAME}";r={decision.remaining};t={t}',
        }
        if not decision.allowed:
            found["Retry-After"] = str(decision.retry_after)
        return found


_create_lock = threading.Lock()


def limiter_for(request: Request) -> RateLimiter | None:
    """The app's write limiter (made on first use from its settings), or None when turned off."""
    state = request.app.state
    found: tuple[RateLimiter | None] | None = getattr(state, "write_limiter", None)
    if found is None:
        with _create_lock:
            found = getattr(state, "write_limiter", None)
            if found is None:
                rate = parse_rate(state.settings.rate_limit_writes)
                found = (RateLimiter(rate) if rate else None,)
                state.write_limiter = found
    return found[0]


def principal_key(user_id: int, api_key_id: int | None) -> str:
    """Budgets are per API key; a browser session (no key) spends its user's budget."""
    return f"key:{api_key_id}" if api_key_id is not None else f"user:{user_id}"


def enforce_write_limit(request: Request, *, user_id: int, api_key_id: int | None) -> None:
    """Count one write for the caller; raise 429 (TooManyRequests) when the budget is spent.

    Reads (any other method) pass untouched. The RateLimit fields are left on ``request.state``
    for the request middleware to put on whatever answer the request ends with.
    """
    if request.method not in WRITE_METHODS:
        return
    limiter = limiter_for(request)
    if limiter is None:
        return
    decision = limiter.hit(principal_key(user_id, api_key_id))
    headers = limiter.headers(decision)
    setattr(request.state, STATE_HEADERS, [(k.lower().encode(), v.encode()) for k, v in headers.items()])
    if not decision.allowed:
        raise TooManyRequests(
            f"Too many writes {'with this key' if api_key_id is not None else 'from this account'}: "
            f"the limit is {limiter.rate}. Try again in {decision.retry_after} s.",
            headers=headers,
            **{"violated-policies": [POLICY_NAME]},
        )
