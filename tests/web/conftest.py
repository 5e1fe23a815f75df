"""Helpers for the desk's tests: people with passwords, and a signed-in TestClient."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.roles import Role
from app.db import Database
from tests.conftest import Desk, Person

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class DeskPerson:
    person: Person
    password: str

    @property
    def email(self) -> str:
        return self.person.principal.email

    @property
    def id(self) -> int:
        return self.person.id

    @property
    def headers(self) -> dict[str, str]:
        return self.person.headers


def with_password(database: Database, person: Person, password: str = PASSWORD) -> DeskPerson:
    with database.transaction() as session:
        auth_service.update_user(session, actor=Actor.system(), user_id=person.id, password=password)
    return DeskPerson(person, password)


class People(dict[str, DeskPerson]):
    """people["editor"], people["editor2"]...: made on first use (hashing a password takes a while)."""

    def __init__(self, desk: Desk, database: Database) -> None:
        super().__init__()
        self.desk = desk
        self.database = database

    def __missing__(self, key: str) -> DeskPerson:
        role = Role(key.rstrip("0123456789"))
        made = with_password(self.database, self.desk.person(role))
        self[key] = made
        return made


@pytest.fixture
def people(desk: Desk, database: Database) -> People:
    return People(desk, database)


def sign_in(client: TestClient, who: DeskPerson) -> str:
    """Signs ``client`` in as ``who``; returns the session's CSRF token."""
    response = client.post("/desk/signin", data={"email": who.email, "password": who.password}, follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/desk/")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)
