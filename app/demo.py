"""The demo desk: a handful of people in every role and claims in every state, written for the
demo (a fictional river flood in a fictional province). Loaded once; later runs only mint a
fresh key for the demo admin, since stored keys cannot be shown again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TextIO

import sqlalchemy as sa
from sqlmodel import col

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.models import User
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import service as claims
from app.claims.schemas import ClaimCreate, Priority, VerdictIn
from app.clock import clock
from app.config import Settings
from app.db import Database
from app.evidence import service as evidence
from app.evidence.schemas import EvidenceIn

ADMIN_EMAIL = "admin@demo.claimdesk.test"
DEMO_PASSWORD = "demo-desk-password"  # noqa: S105  (printed at start: a demo desk, not a secret)

PEOPLE = [
    (ADMIN_EMAIL, "Desk Admin", Role.admin),
    ("noor@demo.claimdesk.test", "Noor Haddad (editor)", Role.editor),
    ("tomas@demo.claimdesk.test", "Tomás Reyes (editor)", Role.editor),
    ("ayo@demo.claimdesk.test", "Ayo Bello (checker)", Role.checker),
    ("mira@demo.claimdesk.test", "Mira Kovač (checker)", Role.checker),
    ("wire@demo.claimdesk.test", "Wire desk tool (contributor)", Role.contributor),
    ("guest@demo.claimdesk.test", "Guest (viewer)", Role.viewer),
]

STORY_URL = "https://news.example/2026/11/velna-river-flood"


def load_demo(database: Database, settings: Settings, *, out: TextIO) -> None:
    with database.transaction() as session:
        existing = session.execute(sa.select(User).where(col(User.email) == ADMIN_EMAIL)).scalar_one_or_none()
        if existing is not None:
            assert existing.id is not None
            _, key = auth_service.create_api_key(
                session, actor=Actor.system(), user_id=existing.id, name="demo (again)"
            )
            out.write("The demo desk is already loaded; here is a fresh key for its admin.\n")
            _print_access(out, key, settings)
            return
        people: dict[str, Principal] = {}
        admin_key = ""
        for email, name, role in PEOPLE:
            user = auth_service.create_user(
                session, actor=Actor.system(), email=email, name=name, role=role, password=DEMO_PASSWORD
            )
            assert user.id is not None
            row, key = auth_service.create_api_key(session, actor=Actor.system(), user_id=user.id, name="demo")
            people[email.split("@")[0]] = Principal(user.id, role, email, name, row.id)
            if email == ADMIN_EMAIL:
                admin_key = key
        _load_claims(session, people, settings)
    out.write("Loaded the demo desk: 7 people, claims in every state.\n")
    _print_access(out, admin_key, settings)


def _print_access(out: TextIO, key: str, settings: Settings) -> None:
    people = ", ".join(email.split("@")[0] + f" ({role.value})" for email, _, role in PEOPLE)
    desk_url = settings.public_base_url.rstrip("/") + "/desk/"
    out.write(
        f"\nDemo users, all @demo.claimdesk.test with the password {DEMO_PASSWORD!r}: {people}.\n"
        f"Sign in to the desk in a browser at {desk_url}\n"
        "  e.g. ayo@demo.claimdesk.test (checker), noor@demo.claimdesk.test (editor), admin@demo.claimdesk.test\n"
        "Call the API as the demo admin:\n"
        f"  export CLAIMDESK_KEY={key}\n"
        '  curl -H "Authorization: Bearer $CLAIMDESK_KEY" http://127.0.0.1:${PORT:-8000}/api/v1/claims\n'
    )


def _load_claims(session: Any, p: dict[str, Principal], settings: Settings) -> None:
    wire, noor, tomas, ayo, mira = p["wire"], p["noor"], p["tomas"], p["ayo"], p["mira"]
    now = clock.now()

    def new(who: Principal, text: str, **kw: Any) -> int:
        claim = claims.create_claim(
            session,
            principal=who,
            data=ClaimCreate(text=text, appearance_url=STORY_URL, appeared_at=now - timedelta(hours=6), **kw),
            settings=settings,
        )
        assert claim.id is not None
        return claim.id

    def act(who: Principal, cid: int, action: str, **kw: Any) -> None:
        claims.perform_action(session, principal=who, claim_id=cid, action_name=action, settings=settings, **kw)

    def note(who: Principal, cid: int, text: str, **kw: Any) -> None:
        evidence.add_evidence(
            session,
            principal=who,
            claim_id=cid,
            data=EvidenceIn(kind="note", note=text, **kw),
            settings=settings,
        )

    def link(who: Principal, cid: int, url: str, text: str, **kw: Any) -> None:
        evidence.add_evidence(
            session,
            principal=who,
            claim_id=cid,
            data=EvidenceIn(kind="link", url=url, note=text, **kw),
            settings=settings,
        )

    def verdict(who: Principal, cid: int, rating: str, summary: str, **kw: Any) -> None:
        claims.set_verdict(
            session,
            principal=who,
            claim_id=cid,
            data=VerdictIn(rating=rating, summary=summary, **kw),
            if_match=None,
            settings=settings,
        )

    # submitted: fresh from the wire tool, not yet triaged.
    new(
        wire,
        "Thirty-two people have died in Velna province since the river burst its banks",
        claimant="the provincial governor",
        tags=["flood", "casualties"],
        priority=Priority.high,
    )
    # queued: accepted, waiting for a checker.
    q1 = new(
        wire,
        "As many as 7,500 homes are under water in the lower Velna valley",
        claimant="the Red Lantern relief agency",
        tags=["flood"],
        priority=Priority.urgent,
        due_at=now + timedelta(hours=3),
    )
    act(noor, q1, "queue")
    q2 = new(
        wire,
        "The Velna dam was completed in 1979",
        claimant="a ministry statement",
        tags=["flood", "infrastructure"],
    )
    act(noor, q2, "queue")
    # in_progress: a checker is on it.
    ip = new(
        wire,
        "Footage shared by the dam operator shows the spillway undamaged",
        claimant="Velna Hydro",
        tags=["flood", "video"],
        priority=Priority.high,
    )
    act(noor, ip, "queue")
    act(ayo, ip, "start")
    link(
        ayo,
        ip,
        "https://video.example/velna-spillway",
        "The operator's upload; no capture date in the metadata.",
        dimension="date",
    )
    # in_review: verdict proposed, waiting for sign-off.
    ir = new(
        wire,
        "Rainfall in Velna this week was the heaviest in a century",
        claimant="the regional weather office",
        tags=["flood", "weather"],
    )
    act(noor, ir, "queue")
    act(mira, ir, "start")
    link(
        mira,
        ir,
        "https://weather.example/velna/records",
        "Station records back to 1921.",
        stance="supports",
        visibility="public",
        dimension="figure",
    )
    verdict(
        mira,
        ir,
        "partly_confirmed",
        "The 3-day total is a record at two of the five stations, not across the region.",
        confidence="medium",
        findings={"figure": "unverified", "location": "confirmed"},
    )
    act(mira, ir, "submit")
    # published: signed off by an editor other than the verdict's author.
    pub = new(
        wire,
        "The evacuation order came two days before the river peaked",
        claimant="the mayor of Tarn",
        tags=["flood", "timeline"],
        public=True,
    )
    act(noor, pub, "queue")
    act(ayo, pub, "start")
    note(
        ayo,
        pub,
        "The order was posted at 21:40 on the day of the peak, per the city's own archive.",
        stance="refutes",
        visibility="public",
        dimension="date",
    )
    verdict(
        ayo,
        pub,
        "false",
        "The order was issued on the evening of the peak, not two days earlier.",
        confidence="high",
        findings={"date": "false"},
    )
    act(ayo, pub, "submit")
    act(tomas, pub, "approve")
    # published with a pending recheck: unverified, to be looked at again.
    un = new(
        wire,
        "Three bridges on the Velna have collapsed",
        claimant="a local council member",
        tags=["flood", "infrastructure"],
        public=True,
    )
    act(noor, un, "queue")
    act(mira, un, "start")
    note(
        mira,
        un,
        "One collapse confirmed by photos; the other two reports are unsourced.",
        visibility="public",
    )
    verdict(
        mira,
        un,
        "unverified",
        "One collapse is confirmed; two remain unverified.",
        recheck_at=now + timedelta(days=2),
    )
    act(mira, un, "submit")
    act(noor, un, "approve")
    # rejected: out of scope.
    rj = new(wire, "Residents say the flood was a punishment for the new shopping centre", tags=["flood"])
    act(noor, rj, "reject", reason="An opinion, not a checkable statement of fact.")
