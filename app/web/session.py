"""The desk's signed session cookie and its CSRF token.

The cookie is ``<payload>.<signature>``: the payload is base64url JSON ``{"u": user id, "v": the
user's credential version, "n": a random nonce, "iat": issued at, "exp": expires at}`` and the
signature an HMAC-SHA256 over the payload with a key derived from ``CLAIMDESK_SECRET_KEY``. Nothing
is stored on the server: the user is loaded on every request (so a deactivated user or a changed role
takes effect at once), and ``v`` is derived from the stored password hash, so setting a new password
ends every session of that user.

The CSRF token is an HMAC of the session's nonce: one per session, checked on every unsafe request
(a hidden ``csrf`` form field, or the ``X-CSRF-Token`` header for fetch/XHR).

Without ``CLAIMDESK_SECRET_KEY`` a random key is made once per process: sessions then end when the
process restarts and do not work across several server processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from app.config import Settings

log = logging.getLogger("claimdesk.desk")

COOKIE_NAME = "claimdesk_desk"
COOKIE_PATH = "/desk"
LIFETIME_SECONDS = 12 * 3600
_MAX_COOKIE = 1024

_process_secret: bytes | None = None
_process_secret_lock = threading.Lock()


def secret_key(settings: Settings) -> bytes:
    global _process_secret
    if settings.secret_key:
        return settings.secret_key.encode()
    with _process_secret_lock:
        if _process_secret is None:
            _process_secret = secrets.token_bytes(32)
            log.warning(
                "CLAIMDESK_SECRET_KEY is not set: desk sign-ins use a random key made for this process, "
                "so they end when it restarts and do not work across several server processes"
            )
        return _process_secret


def _subkey(settings: Settings, purpose: str) -> bytes:
    return hmac.new(secret_key(settings), f"claimdesk desk {purpose}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def credential_version(password_hash: str | None) -> str:
    """Changes whenever the password does; a session carrying an old one is refused."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DeskSession:
    user_id: int
    version: str
    nonce: str
    issued_at: int
    expires_at: int


def issue(
    settings: Settings, *, user_id: int, password_hash: str | None, now: float | None = None
) -> tuple[str, DeskSession]:
    issued = int(now if now is not None else time.time())
    session = DeskSession(
        user_id=user_id,
        version=credential_version(password_hash),
        nonce=secrets.token_urlsafe(16),
        issued_at=issued,
        expires_at=issued + LIFETIME_SECONDS,
    )
    payload = _b64(
        json.dumps(
            {"u": user_id, "v": session.version, "n": session.nonce, "iat": issued, "exp": session.expires_at},
            separators=(",", ":"),
        ).encode()
    )
    signature = _b64(hmac.new(_subkey(settings, "session"), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", session


def read(settings: Settings, cookie: str | None, *, now: float | None = None) -> DeskSession | None:
    """The session a cookie carries, or None when it is missing, forged, malformed or expired."""
    if not cookie or len(cookie) > _MAX_COOKIE or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    expected = _b64(hmac.new(_subkey(settings, "session"), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = DeskSession(
            user_id=int(data["u"]),
            version=str(data["v"]),
            nonce=str(data["n"]),
            issued_at=int(data["iat"]),
            expires_at=int(data["exp"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires_at <= int(now if now is not None else time.time()):
        return None
    return session


def csrf_token(settings: Settings, session: DeskSession) -> str:
    return _b64(hmac.new(_subkey(settings, "csrf"), session.nonce.encode(), hashlib.sha256).digest())


def csrf_matches(settings: Settings, session: DeskSession, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(settings, session), presented)


def cookie_is_secure(settings: Settings) -> bool:
    return settings.public_base_url.lower().startswith("https://")


class SignInThrottle:
    """At most ``per_email`` failed sign-ins per address and ``per_client`` per client address in
    ``window`` seconds, counted in this process (enough to slow a password guesser down)."""

    def __init__(self, *, per_email: int = 5, per_client: int = 30, window: float = 300.0) -> None:
        self.per_email = per_email
        self.per_client = per_client
        self.window = window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        stamps = [t for t in self._failures.get(key, []) if now - t < self.window]
        if stamps:
            self._failures[key] = stamps
        else:
            self._failures.pop(key, None)
        return stamps

    def _wait(self, email: str, client: str, now: float) -> int:
        waits = []
        for key, limit in ((f"e:{email}", self.per_email), (f"c:{client}", self.per_client)):
            stamps = self._recent(key, now)
            if len(stamps) >= limit:
                waits.append(int(self.window - (now - stamps[-limit])) + 1)
        return max(waits, default=0)

    def reserve(self, email: str, client: str, now: float | None = None) -> tuple[int, float]:
        """Count an attempt before its password is checked, so attempts sent side by side cannot all
        pass while the first is still being verified. Returns the seconds to wait (0: go ahead) and
        the attempt's stamp, for ``succeeded``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            wait = self._wait(email, client, now)
            if wait:
                return wait, now
            if len(self._failures) > 50_000:  # bounded: forget everything rather than grow forever
                self._failures.clear()
            for key in (f"e:{email}", f"c:{client}"):
                self._failures.setdefault(key, []).append(now)
            return 0, now

    def succeeded(self, email: str, client: str, stamp: float) -> None:
        """A right password: the address's failures are forgotten, and this attempt is not held
        against the client."""
        with self._lock:
            self._failures.pop(f"e:{email}", None)
            stamps = self._failures.get(f"c:{client}")
            if stamps and stamp in stamps:
                stamps.remove(stamp)
