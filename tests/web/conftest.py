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


def png_bytes(width: int = 64, height: int = 40) -> bytes:
    """A real PNG (a blue-to-teal gradient with a darker band), made with the standard library."""
    import struct
    import zlib

    rows = bytearray()
    for y in range(height):
        rows.append(0)
        band = height // 3 <= y < height // 3 + max(2, height // 8)
        for x in range(width):
            r = 20 + (x * 40) // max(1, width)
            g = 80 + (x * 120) // max(1, width)
            b = 170 - (y * 40) // max(1, height)
            if band:
                r, g, b = r // 2, g // 2, b // 2
            rows += bytes((r, g, b))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )


def api_claim(client: TestClient, people: dict[str, DeskPerson], state: str = "queued", **fields: object) -> int:
    """A claim made through the API and moved to ``state`` (queued, in_progress for people["checker"])."""
    body = {"text": "The river rose four metres overnight", "claimant": "a city spokesperson", **fields}
    response = client.post("/api/v1/claims", json=body, headers=people["contributor"].headers)
    assert response.status_code == 201, response.text
    claim_id = int(response.json()["id"])
    if state in ("queued", "in_progress"):
        r = client.post(f"/api/v1/claims/{claim_id}/actions/queue", headers=people["editor"].headers)
        assert r.status_code == 200, r.text
    if state == "in_progress":
        r = client.post(f"/api/v1/claims/{claim_id}/actions/start", headers=people["checker"].headers)
        assert r.status_code == 200, r.text
    return claim_id
