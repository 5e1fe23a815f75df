"""Users and API keys.

Key lookups are cached in-process for ``KEY_CACHE_TTL_SECONDS`` (keyed by the key's hash, never the
key itself): every authenticated request would otherwise read the key and its user. Revoking a
key, or changing a user's role, name or active flag through this module, drops the affected entries
at once in this process (when the change is made and again when it commits). Another process (a
second server, the CLI) sees such a change within the TTL. Expiry is checked on every hit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.auth import keys as key_tools
from app.auth import passwords
from app.auth.models import ApiKey, User
from app.auth.roles import Role
from app.clock import clock
from app.errors import Conflict, NotFound, Unprocessable

LAST_USED_RESOLUTION = timedelta(seconds=60)
KEY_CACHE_TTL_SECONDS = 10.0
KEY_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    role: Role
    email: str
    name: str
    api_key_id: int | None

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, api_key_id=self.api_key_id)

    def has(self, role: Role) -> bool:
        return self.role.admits(role)


def _user_subject(user_id: int) -> str:
    return f"user:{user_id}"


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def create_user(
    session: Session,
    *,
    actor: Actor,
    email: str,
    name: str,
    role: Role,
    password: str | None = None,
) -> User:
    email = email.strip().lower()
    if session.execute(sa.select(col(User.id)).where(col(User.email) == email)).first():
        raise Conflict(f"A user with email {email} already exists.")
    now = clock.now()
    user = User(
        email=email,
        name=name,
        role=role.value,
        active=True,
        password_hash=passwords.hash_password(password) if password else None,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A user with email {email} already exists.") from exc
    assert user.id is not None
    audit.record(
        session,
        type_="user.created",
        actor=actor,
        subject=_user_subject(user.id),
        data={"email": email, "name": name, "role": role.value},
        emit=False,
    )
    return user


def _active_admin_ids(session: Session) -> list[int]:
    """Locked on PostgreSQL, so two admins stepping down at once cannot both pass the check."""
    stmt = sa.select(col(User.id)).where(col(User.role) == Role.admin.value, col(User.active).is_(True))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.order_by(col(User.id)).with_for_update()
    rows = session.execute(stmt)
    return [uid for (uid,) in rows if uid is not None]


def update_user(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    # Lock the admins first (always in id order), then the user: one order for every writer.
    admins = _active_admin_ids(session) if role is not None or active is not None else []
    user = session.get(User, user_id, with_for_update=session.get_bind().dialect.name == "postgresql")
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    losing_admin = (
        user.role == Role.admin.value and user.active and ((role is not None and role != Role.admin) or active is False)
    )
    if losing_admin and admins == [user.id]:
        raise Conflict("This is the last active admin: promote another admin first.")
    changes: dict[str, list[object]] = {}
    if name is not None and name != user.name:
        changes["name"] = [user.name, name]
        user.name = name
    if role is not None and role.value != user.role:
        changes["role"] = [user.role, role.value]
        user.role = role.value
    if active is not None and active != user.active:
        changes["active"] = [user.active, active]
        user.active = active
    if password is not None:
        changes["password"] = ["(set)", "(changed)"]
        user.password_hash = passwords.hash_password(password)
    if changes:
        user.updated_at = clock.now()
        session.flush()
        forget_keys(session, user_id=user_id)
        audit.record(
            session,
            type_="user.updated",
            actor=actor,
            subject=_user_subject(user_id),
            data={"changes": changes},
            emit=False,
        )
    return user


def list_users(session: Session, *, after_id: int | None, limit: int) -> list[User]:
    stmt = sa.select(User).order_by(col(User.id)).limit(limit + 1)
    if after_id is not None:
        stmt = stmt.where(col(User.id) > after_id)
    return list(session.execute(stmt).scalars())


def create_api_key(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the user; returns the row and the key itself (never stored)."""
    user = get_user(session, user_id)
    if expires_at is not None and expires_at <= clock.now():
        raise Unprocessable("expires_at must be in the future.", errors=[{"loc": ["body", "expires_at"]}])
    raw = key_tools.new_key()
    row = ApiKey(
        user_id=user_id,
        name=name,
        prefix=key_tools.display_prefix(raw),
        key_hash=key_tools.hash_key(raw),
        created_at=clock.now(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    assert user.id is not None
    audit.record(
        session,
        type_="api_key.created",
        actor=actor,
        subject=_user_subject(user.id),
        data={"api_key_id": row.id, "prefix": row.prefix, "name": name},
        emit=False,
    )
    return row, raw


def list_api_keys(session: Session, *, user_id: int, after_id: int | None, limit: int) -> list[ApiKey]:
    get_user(session, user_id)
    stmt = sa.select(ApiKey).where(col(ApiKey.user_id) == user_id).order_by(col(ApiKey.id)).limit(limit + 1)
    if after_id is not None:
        stmt = stmt.where(col(ApiKey.id) > after_id)
    return list(session.execute(stmt).scalars())


def revoke_api_key(session: Session, *, actor: Actor, key_id: int) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"No API key with id {key_id}.")
    if row.revoked_at is not None:
        return row
    if actor.user_id == row.user_id:
        owner = get_user(session, row.user_id)
        live = sa.select(col(ApiKey.id)).where(
            col(ApiKey.user_id) == row.user_id,
            col(ApiKey.revoked_at).is_(None),
            sa.or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > clock.now()),
        )
        if session.get_bind().dialect.name == "postgresql":
            live = live.order_by(col(ApiKey.id)).with_for_update()
        if owner.role == Role.admin.value and len(session.execute(live).all()) <= 1:
            raise Conflict("This is your last working key: create another before revoking it.")
    row.revoked_at = clock.now()
    session.flush()
    forget_keys(session, key_id=row.id)
    audit.record(
        session,
        type_="api_key.revoked",
        actor=actor,
        subject=_user_subject(row.user_id),
        data={"api_key_id": row.id, "prefix": row.prefix},
        emit=False,
    )
    return row


@dataclass(frozen=True)
class KeyLookup:
    principal: Principal
    last_used_at: datetime | None


@dataclass
class _CachedKey:
    lookup: KeyLookup
    expires_at: datetime | None
    stored_at: float


@dataclass
class _KeyCache:
    """Successful lookups by (database, key hash). ``generation`` moves on every invalidation, so a
    lookup that raced with one is not stored."""

    entries: dict[tuple[str, str], _CachedKey] = field(default_factory=dict)
    generation: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, scope: tuple[str, str]) -> _CachedKey | None:
        entry = self.entries.get(scope)
        if entry is not None and time.monotonic() - entry.stored_at >= KEY_CACHE_TTL_SECONDS:
            with self.lock:
                if self.entries.get(scope) is entry:
                    del self.entries[scope]
            return None
        return entry

    def put(self, scope: tuple[str, str], entry: _CachedKey, generation: int) -> None:
        with self.lock:
            if generation != self.generation:
                return
            if len(self.entries) >= KEY_CACHE_MAX_ENTRIES:
                self.entries.clear()
            self.entries[scope] = entry

    def forget(self, *, key_id: int | None = None, user_id: int | None = None) -> None:
        with self.lock:
            self.generation += 1
            for scope, entry in list(self.entries.items()):
                principal = entry.lookup.principal
                if (key_id is not None and principal.api_key_id == key_id) or (
                    user_id is not None and principal.user_id == user_id
                ):
                    del self.entries[scope]

    def clear(self) -> None:
        with self.lock:
            self.generation += 1
            self.entries.clear()


_key_cache = _KeyCache()
_PENDING = "claimdesk.auth.forget"


def forget_keys(session: Session, *, key_id: int | None = None, user_id: int | None = None) -> None:
    """Drop cached lookups for a key or for all of a user's keys, now and again when ``session``
    commits (a lookup between now and the commit still reads the old row and may be cached)."""
    _key_cache.forget(key_id=key_id, user_id=user_id)
    session.info.setdefault(_PENDING, []).append((key_id, user_id))


def clear_key_cache() -> None:
    _key_cache.clear()


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    for key_id, user_id in session.info.pop(_PENDING, ()):
        _key_cache.forget(key_id=key_id, user_id=user_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    # The change did not happen; dropping entries again is harmless and keeps the list bounded.
    for key_id, user_id in session.info.pop(_PENDING, ()):
        _key_cache.forget(key_id=key_id, user_id=user_id)


def _cache_scope(session: Session, key_hash: str) -> tuple[str, str]:
    return (str(session.get_bind().engine.url), key_hash)


def _well_formed(raw_key: str) -> bool:
    return raw_key.startswith(key_tools.KEY_PREFIX) and len(raw_key) <= 200


def _cached(scope: tuple[str, str]) -> KeyLookup | None:
    cached = _key_cache.get(scope)
    if cached is None or (cached.expires_at is not None and cached.expires_at <= clock.now()):
        return None  # a key that expired while cached is answered by the database (and refused)
    return cached.lookup


def peek_key(engine_url: str, raw_key: str) -> KeyLookup | None:
    """The cached lookup for a presented key, without touching the database; None when nothing
    usable is cached (the caller then asks ``lookup_key``, which decides)."""
    if not _well_formed(raw_key):
        return None
    return _cached((engine_url, key_tools.hash_key(raw_key)))


def lookup_key(session: Session, raw_key: str) -> KeyLookup | None:
    """The principal for a presented key, or None if it is unknown, revoked, expired or inactive."""
    if not _well_formed(raw_key):
        return None
    key_hash = key_tools.hash_key(raw_key)
    scope = _cache_scope(session, key_hash)
    hit = _cached(scope)
    if hit is not None:
        return hit
    generation = _key_cache.generation
    row = session.execute(
        sa.select(
            col(ApiKey.id),
            col(ApiKey.expires_at),
            col(ApiKey.revoked_at),
            col(ApiKey.last_used_at),
            col(User.id),
            col(User.role),
            col(User.email),
            col(User.name),
            col(User.active),
        )
        .join(User, col(User.id) == col(ApiKey.user_id))
        .where(col(ApiKey.key_hash) == key_hash)
    ).first()
    if row is None:
        return None
    key_id, expires_at, revoked_at, last_used_at, user_id, role, email, name, active = row
    now = clock.now()
    if revoked_at is not None or not active or (expires_at is not None and expires_at <= now):
        return None
    assert user_id is not None
    found = KeyLookup(Principal(user_id, Role(role), email, name, key_id), last_used_at)
    _key_cache.put(scope, _CachedKey(found, expires_at, time.monotonic()), generation)
    return found


def touch_key(session: Session, key_id: int) -> None:
    """Record use, coalesced: callers do this at most once a minute per key."""
    now = clock.now()
    session.execute(sa.update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=now))
    # Cached lookups carry the time of last use: move it on, or every cached hit would touch again.
    with _key_cache.lock:
        for scope, entry in list(_key_cache.entries.items()):
            if entry.lookup.principal.api_key_id == key_id:
                _key_cache.entries[scope] = _CachedKey(
                    KeyLookup(entry.lookup.principal, now), entry.expires_at, entry.stored_at
                )


def should_touch(last_used_at: datetime | None) -> bool:
    return last_used_at is None or clock.now() - last_used_at >= LAST_USED_RESOLUTION
