"""Roles are ordered: a route that admits a role admits every role above it."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"
    contributor = "contributor"
    checker = "checker"
    editor = "editor"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def admits(self, required: Role) -> bool:
        """True when this role is at least ``required``."""
        return _RANK[self] >= _RANK[required]


_RANK = {role: i for i, role in enumerate(Role)}
