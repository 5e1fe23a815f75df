"""API keys: ``cdk_`` + 32 random bytes in URL-safe base64. Stored as SHA-256 (the keys carry 256
bits of entropy, so a slow password hash would add nothing but latency)."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "cdk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The first characters of a key, safe to show and log, to tell keys apart."""
    return key[:12]
