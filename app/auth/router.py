"""Users and API keys (admin), and /me."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.auth import service
from app.auth.deps import Admin, Viewer
from app.auth.models import ApiKey, User
from app.auth.roles import Role
from app.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyPublic,
    Me,
    UserCreate,
    UserList,
    UserPublic,
    UserUpdate,
)
from app.claims.service import parse_id
from app.db import CommitOnReturn, ReadSessionDep, WriteSessionDep
from app.errors import problem_response
from app.pagination import CursorQuery, LimitQuery, finish_page, int_position

router = APIRouter(prefix="/api/v1", tags=["users and keys"], route_class=CommitOnReturn)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_response("No valid API key"),
    403: problem_response("Admins only"),
    404: problem_response("Unknown user or key"),
    409: problem_response("Duplicate email, or it would remove the last admin or key"),
    422: problem_response("Invalid input"),
}


def _user(u: User) -> UserPublic:
    assert u.id is not None
    return UserPublic(id=u.id, email=u.email, name=u.name, role=Role(u.role), active=u.active, created_at=u.created_at)


def _key(k: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(k, from_attributes=True)


@router.get("/me", response_model=Me, summary="Who am I", responses=ERRORS)
def me(principal: Viewer, session: ReadSessionDep) -> Me:
    user = service.get_user(session, principal.user_id)
    return Me(**_user(user).model_dump(), api_key_id=principal.api_key_id)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=ERRORS,
    summary="Create a user",
)
def create_user(body: UserCreate, principal: Admin, session: WriteSessionDep, response: Response) -> UserPublic:
    user = service.create_user(
        session,
        actor=principal.actor,
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
    )
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return _user(user)


@router.get("/users", response_model=UserList, responses=ERRORS, summary="List users")
def list_users(
    request: Request,
    response: Response,
    principal: Admin,
    session: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> UserList:
    rows = service.list_users(session, after_id=int_position(cursor, "users"), limit=limit)
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="users")
    return UserList(items=[_user(u) for u in rows], next_cursor=next_cursor)


@router.get("/users/{user_id}", response_model=UserPublic, responses=ERRORS, summary="Read a user")
def get_user(user_id: str, principal: Admin, session: ReadSessionDep) -> UserPublic:
    return _user(service.get_user(session, parse_id(user_id, "user")))


@router.patch(
    "/users/{user_id}",
    response_model=UserPublic,
    responses=ERRORS,
    summary="Change a user's role, name, password or active flag",
    description="Deactivating a user disables every key they hold at once. The last active admin cannot be demoted.",
)
def update_user(user_id: str, body: UserUpdate, principal: Admin, session: WriteSessionDep) -> UserPublic:
    user = service.update_user(
        session,
        actor=principal.actor,
        user_id=parse_id(user_id, "user"),
        name=body.name,
        role=body.role,
        active=body.active,
        password=body.password,
    )
    return _user(user)


@router.post(
    "/users/{user_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=ERRORS,
    summary="Create an API key",
    description="The key is in the response once; only its hash is stored.",
)
def create_api_key(
    user_id: str, body: ApiKeyCreate, principal: Admin, session: WriteSessionDep, response: Response
) -> ApiKeyCreated:
    response.headers["Cache-Control"] = "no-store"  # the key itself is in this answer
    row, raw = service.create_api_key(
        session,
        actor=principal.actor,
        user_id=parse_id(user_id, "user"),
        name=body.name,
        expires_at=body.expires_at,
    )
    return ApiKeyCreated(**_key(row).model_dump(), key=raw)


@router.get("/users/{user_id}/api-keys", response_model=ApiKeyList, responses=ERRORS, summary="List a user's keys")
def list_api_keys(
    request: Request,
    response: Response,
    user_id: str,
    principal: Admin,
    session: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> ApiKeyList:
    rows = service.list_api_keys(
        session, user_id=parse_id(user_id, "user"), after_id=int_position(cursor, "keys"), limit=limit
    )
    rows, next_cursor = finish_page(request, response, rows, limit=limit, kind="keys")
    return ApiKeyList(items=[_key(k) for k in rows], next_cursor=next_cursor)


@router.delete("/api-keys/{key_id}", response_model=ApiKeyPublic, responses=ERRORS, summary="Revoke an API key")
def revoke_api_key(key_id: str, principal: Admin, session: WriteSessionDep) -> ApiKeyPublic:
    return _key(service.revoke_api_key(session, actor=principal.actor, key_id=parse_id(key_id, "API key")))
