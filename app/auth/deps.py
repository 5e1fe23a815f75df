"""The CurrentPrincipal dependency and role requirements for routes."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError

from app.auth import service as auth_service
from app.auth.roles import Role
from app.auth.service import Principal
from app.db import Database, get_database
from app.errors import Forbidden, Unauthorized
from app.ratelimit import enforce_write_limit

log = logging.getLogger("claimdesk.auth")

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cdk_...`")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_principal(request: Request, credentials: Credentials) -> Principal:
    return await _authenticate(request, credentials)


async def _authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    # Async on purpose: a key found in the look-up cache costs no database work, so the common case
    # needs no trip through the thread pool; a miss and the last-used write go there.
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:  # a route asking twice (a role and CurrentPrincipal): spend the budget once
        return known
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    database = get_database(request)
    raw_key = credentials.credentials
    found = auth_service.peek_key(database.read_url, raw_key)
    if found is None:
        found = await run_in_threadpool(_lookup, database, raw_key)
    if found is None:
        raise Unauthorized("The API key is unknown, revoked or expired, or its user is inactive.")
    principal = found.principal
    # Writes spend the key's budget (429 when spent), before anything touches the database again.
    enforce_write_limit(request, user_id=principal.user_id, api_key_id=principal.api_key_id)
    if principal.api_key_id is not None and auth_service.should_touch(found.last_used_at):
        await run_in_threadpool(_touch, database, principal.api_key_id)
    request.state.principal = principal
    return principal


def _lookup(database: Database, raw_key: str) -> auth_service.KeyLookup | None:
    with database.read_session() as session:
        return auth_service.lookup_key(session, raw_key)


def _touch(database: Database, key_id: int) -> None:
    # Best effort: a busy database must not turn a read into an error over a last-used time.
    try:
        with database.transaction() as session:
            auth_service.touch_key(session, key_id)
    except OperationalError:
        log.info("could not record the use of key %s; will try on a later request", key_id)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(role: Role) -> object:
    """A dependency admitting ``role`` and every role above it (401, then 403)."""

    # The key is checked here rather than through CurrentPrincipal: one level of dependencies less
    # for FastAPI to solve on every request.
    async def _check(request: Request, credentials: Credentials) -> Principal:
        principal = await _authenticate(request, credentials)
        if not principal.has(role):
            raise Forbidden(f"This needs the {role.value} role or above; you are {principal.role.value}.")
        return principal

    return Depends(_check)


Viewer = Annotated[Principal, require(Role.viewer)]
Contributor = Annotated[Principal, require(Role.contributor)]
Checker = Annotated[Principal, require(Role.checker)]
Editor = Annotated[Principal, require(Role.editor)]
Admin = Annotated[Principal, require(Role.admin)]
