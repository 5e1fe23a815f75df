from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from app.auth.roles import Role
from app.validation import StrictInput, UTCDatetime

Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[str, StringConstraints(min_length=10, max_length=256)]


class Strict(StrictInput):
    pass


class UserCreate(Strict):
    email: Email = Field(examples=["amina@desk.example"])
    name: Name = Field(examples=["Amina Diallo"])
    role: Role = Field(examples=["checker"])
    password: Password | None = Field(default=None, description="For signing in to the browser desk.")


class UserUpdate(Strict):
    name: Name | None = None
    role: Role | None = None
    active: bool | None = None
    password: Password | None = None


class UserPublic(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime


class UserList(BaseModel):
    items: list[UserPublic]
    next_cursor: str | None = None


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    expires_at: UTCDatetime | None = None


class ApiKeyPublic(BaseModel):
    id: int
    user_id: int
    prefix: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. Shown once: store it now, it cannot be read again.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyPublic]
    next_cursor: str | None = None


class Me(UserPublic):
    api_key_id: int | None
