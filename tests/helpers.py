"""Small helpers for driving the API in tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Desk, Person


class Journey:
    """A cast (contributor, two editors, two checkers, a viewer, an admin) and shortcuts that move a
    claim through the workflow over HTTP."""

    def __init__(self, client: TestClient, desk: Desk) -> None:
        self.client = client
        self.admin = desk.person("admin")
        self.editor = desk.person("editor")
        self.editor2 = desk.person("editor")
        self.checker = desk.person("checker")
        self.checker2 = desk.person("checker")
        self.contributor = desk.person("contributor")
        self.viewer = desk.person("viewer")

    def create(self, who: Person | None = None, **body: Any) -> dict[str, Any]:
        body.setdefault("text", "Forty people died in the district")
        r = self.client.post("/api/v1/claims", json=body, headers=(who or self.contributor).headers)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def act(self, claim_id: int, action: str, who: Person, expect: int = 200, **body: Any) -> dict[str, Any]:
        r = self.client.post(f"/api/v1/claims/{claim_id}/actions/{action}", json=body or None, headers=who.headers)
        assert r.status_code == expect, r.text
        return dict(r.json())

    def verdict(self, claim_id: int, who: Person, rating: str = "false", expect: int = 200, **extra: Any) -> Any:
        r = self.client.put(
            f"/api/v1/claims/{claim_id}/verdict",
            json={"rating": rating, "summary": "What the evidence shows.", **extra},
            headers=who.headers,
        )
        assert r.status_code == expect, r.text
        return r.json()

    def evidence(self, claim_id: int, who: Person, expect: int = 201) -> Any:
        r = self.client.post(
            f"/api/v1/claims/{claim_id}/evidence",
            json={"kind": "note", "note": "The archive shows otherwise."},
            headers=who.headers,
        )
        assert r.status_code == expect, r.text
        return r.json()

    def get(self, claim_id: int, who: Person | None = None) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/claims/{claim_id}", headers=(who or self.viewer).headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def to_state(self, state: str, *, ready: bool = False) -> int:
        """A new claim in ``state``, worked by ``checker``, its verdict written by ``checker``.
        With ``ready``, an in_progress claim already has its verdict and evidence."""
        cid = int(self.create()["id"])
        if state == "submitted":
            return cid
        if state == "rejected":
            self.act(cid, "reject", self.editor, reason="Opinion, not fact.")
            return cid
        self.act(cid, "queue", self.editor)
        if state == "queued":
            return cid
        self.act(cid, "start", self.checker)
        if state == "in_progress" and not ready:
            return cid
        self.verdict(cid, self.checker)
        self.evidence(cid, self.checker)
        if state == "in_progress":
            return cid
        self.act(cid, "submit", self.checker)
        if state == "in_review":
            return cid
        self.act(cid, "approve", self.editor)
        assert state == "published"
        return cid
