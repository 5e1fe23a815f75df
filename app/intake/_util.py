"""Small helpers shared by the intake rules."""

from __future__ import annotations


def wordset(words: str) -> frozenset[str]:
    """A frozen set from a whitespace-separated word list (keeps long lexicons readable)."""
    return frozenset(words.split())
