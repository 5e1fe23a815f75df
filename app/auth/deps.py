"""The CurrentPrincipal dependency and role requirements for routes."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError

from app.auth import service as auth_service
from app.auth.roles import Role
from app.auth.service import Principal
from app.db import get_database
from app.errors import Forbidden, Unauthorized
from app.ratelimit import enforce_write_limit

log = logging.getLogger("claimdesk.auth")

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cdk_...`")


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    database = get_database(request)
    with database.read_session() as session:
        found = auth_service.lookup_key(session, credentials.credentials)
    if found is None:
        raise Unauthorized("The API key is unknown, revoked or expired, or its user is inactive.")
    principal = found.principal
    # Writes spend the key's budget (429 when spent), before anything touches the database again.
    enforce_write_limit(request, user_id=principal.user_id, api_key_id=principal.api_key_id)
    if principal.api_key_id is not None and auth_service.should_touch(found.last_used_at):
        # Best effort: a busy database must not turn a read into an error over a last-used time.
        try:
            with database.transaction() as session:
                auth_service.touch_key(session, principal.api_key_id)
        except OperationalError:
            log.info("could not record the use of key %s; will try on a later request", principal.api_key_id)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(role: Role) -> object:
    """A dependency admitting ``role`` and every role above it (401, then 403)."""

    def _check(principal: CurrentPrincipal) -> Principal:
        if not principal.has(role):
            raise Forbidden(f"This needs the {role.value} role or above; you are {principal.role.value}.")
        return principal

    return Depends(_check)


Viewer = Annotated[Principal, require(Role.viewer)]
Contributor = Annotated[Principal, require(Role.contributor)]
Checker = Annotated[Principal, require(Role.checker)]
Editor = Annotated[Principal, require(Role.editor)]
Admin = Annotated[Principal, require(Role.admin)]
