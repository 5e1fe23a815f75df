"""The desk driven in Debian's Chromium against a live server on the demo desk (SQLite).

A checker signs in, takes the next claim with the keyboard, is refused a premature submit (and
reads why), drops a screenshot on the upload box, pastes a link, writes the verdict and submits;
another editor approves; the public page shows the verdict. The same pages are checked at a phone's
width. Screenshots of the queue and the workspace go to $CLAIMDESK_SCREENSHOT_DIR (docs/img for the
README: `CLAIMDESK_SCREENSHOT_DIR=docs/img pytest tests/web/test_e2e_browser.py`), else a temp dir.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col

from app.auth.models import User
from app.auth.roles import Role
from app.auth.service import Principal
from app.claims import service as claims_service
from app.claims.schemas import ClaimCreate, Priority
from app.clock import clock
from app.config import Settings
from app.db import Database
from app.demo import DEMO_PASSWORD, load_demo
from app.main import create_app
from tests.conftest import make_settings, serve_in_thread
from tests.web.conftest import png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
STEP_TIMEOUT_MS = 20_000

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = os.environ.get("CLAIMDESK_SCREENSHOT_DIR")
    folder = Path(target) if target else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _principal(database: Database, email: str) -> Principal:
    with database.read_session() as session:
        user = session.execute(sa.select(User).where(col(User.email) == email)).scalar_one()
        assert user.id is not None
        return Principal(user.id, Role(user.role), user.email, user.name, None)


def _more_claims(database: Database, settings: Settings) -> None:
    """A fuller queue than the demo's own: a deadline already missed, and a few ordinary ones."""
    wire = _principal(database, "wire@demo.claimdesk.test")
    noor = _principal(database, "noor@demo.claimdesk.test")
    now = clock.now()
    extra = [
        ("Schools in Tarn will stay closed until the end of the month", "the education office", Priority.high, 1),
        ("The relief fund has already paid out 2 million", "a ministry spokesperson", Priority.normal, 30),
        ("Bottled water prices in Velna tripled overnight", "a viral post", Priority.normal, None),
        ("The last flood of this size was in 1952", "a radio presenter", Priority.low, None),
    ]
    with database.transaction() as session:
        for text, claimant, priority, due_hours in extra:
            claim = claims_service.create_claim(
                session,
                principal=wire,
                data=ClaimCreate(
                    text=text,
                    claimant=claimant,
                    priority=priority,
                    tags=["flood"],
                    due_at=now + timedelta(hours=due_hours) if due_hours else None,
                    appearance_url="https://news.example/2026/11/velna-river-flood",
                ),
                settings=settings,
            )
            assert claim.id is not None
            claims_service.perform_action(
                session, principal=noor, claim_id=claim.id, action_name="queue", settings=settings
            )
    clock.advance(2 * 3600)  # the school claim's deadline has passed: it shows as overdue


@pytest.fixture
def demo_desk(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, Database]]:
    path = tmp_path / "claimdesk.db"
    shutil.copyfile(sqlite_template, path)
    settings = make_settings(f"sqlite:///{path}", tmp_path, public_by_default=True, log_level="ERROR")
    from app.db import make_database

    database = make_database(settings)
    load_demo(database, settings, out=io.StringIO())
    _more_claims(database, settings)
    application = create_app(settings, database)
    application.state.owns_database = False
    application.state.start_worker = False
    try:
        with serve_in_thread(application) as url:
            yield url, database
    finally:
        database.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield instance
        finally:
            instance.close()


def _page(browser: Any, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors only: a refused form answers 4xx on purpose, which the console also reports.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.js_errors = errors
    return page


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/desk/")
    assert "/desk/signin" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/desk/")


def _sign_out(page: Any, base: str) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/desk/signin\?ok=signed_out$"))


def _no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width}px wide"


def _every_field_labelled(page: Any) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
            .filter(el => el.labels.length === 0 && !el.getAttribute("aria-label"))
            .map(el => el.id || el.name)"""
    )
    assert unlabelled == []


def _drop_file(page: Any, selector: str, name: str, data: bytes, mime: str) -> None:
    """Drag and drop from the desktop, as the browser reports it: a drop event carrying a File."""
    page.evaluate(
        """([selector, name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            const zone = document.querySelector(selector);
            zone.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer, bubbles: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        }""",
        [selector, name, base64.b64encode(data).decode(), mime],
    )


def test_a_claim_from_the_queue_to_the_public_page(demo_desk: tuple[str, Database], browser: Any, shots: Path) -> None:
    base, database = demo_desk
    page = _page(browser, LAPTOP)

    # Sign in as a checker; the queue lists the urgent claim first and the missed deadline as overdue.
    _sign_in(page, base, "ayo@demo.claimdesk.test")
    queued = page.locator("section[aria-labelledby=queued-h] .claim-row")
    assert queued.count() == 6
    first = queued.nth(0).inner_text()
    assert "As many as 7,500 homes" in first and "Urgent" in first
    assert page.locator(".claim-row.is-overdue").count() == 1
    assert "Schools in Tarn" in page.locator(".claim-row.is-overdue").inner_text()
    _every_field_labelled(page)
    page.screenshot(path=str(shots / "desk-queue.png"))

    # Shortcuts never fire while typing; "?" shows the help; "n" takes the next claim.
    page.get_by_label("Search claims").type("n")
    assert page.url == f"{base}/desk/"
    page.get_by_label("Search claims").fill("")
    page.locator("h1").click()
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#shortcuts").is_visible()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r".*/desk/claims/\d+\?ok=taken$"))
    claim_id = int(re.search(r"/claims/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    assert "As many as 7,500 homes" in page.locator("h1").inner_text()
    assert page.get_by_role("status").inner_text() == "This claim is yours now: it was next in the queue."

    # Submitting now is refused, and the page says why.
    with page.expect_navigation():
        page.get_by_role("button", name="Submit for review").click()
    alert = page.get_by_role("alert")
    assert "Cannot submit yet: verdict and evidence missing." in alert.inner_text()
    assert page.locator("h1").inner_text().startswith("“As many as")

    # Drop a screenshot on the upload box; it uploads with a progress bar and shows in the list.
    picture = png_bytes(480, 270)
    _drop_file(page, ".dropzone", "relief-map.png", picture, "image/png")
    assert "relief-map.png" in page.locator(".upload-text").inner_text()
    page.locator("#file-note").fill("The agency's own map of flooded districts")
    page.locator("#file-stance").select_option("supports")
    page.locator("#file-visibility").select_option("public")
    with page.expect_navigation():
        page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(rf".*/desk/claims/{claim_id}\?ok=evidence#evidence$"))
    assert page.locator("progress").count() == 1
    item = page.locator(".evidence-list li", has_text="relief-map.png")
    assert item.locator("img.ev-preview").evaluate("img => img.complete && img.naturalWidth") == 480

    # Paste a link.
    page.get_by_text("Paste a link").click()
    page.locator("#link-url").fill("https://relief.example/velna/situation-report-3")
    page.locator("#link-note").fill("Situation report 3: 6,900 homes flooded, 600 more at risk")
    page.locator("#link-dimension").select_option("figure")
    with page.expect_navigation():
        page.get_by_role("button", name="Add link").click()
    assert page.url.endswith("ok=evidence#evidence")
    assert page.locator(".evidence-list li", has_text="situation-report-3").count() == 1

    # The verdict.
    page.get_by_label("Rating").select_option("partly_confirmed")
    page.get_by_label("Confidence").select_option("medium")
    page.get_by_label("Summary", exact=False).fill(
        "About 6,900 homes were flooded by the agency's own count; 7,500 includes homes still at risk."
    )
    page.locator("#finding-figure").select_option("unverified")
    page.locator("#finding-location").select_option("confirmed")
    page.get_by_role("button", name="Save verdict").click()
    page.wait_for_url(re.compile(r".*ok=verdict$"))
    assert "Partly confirmed" in page.locator(".verdict-box").inner_text()
    _every_field_labelled(page)
    # The workspace down to the evidence (a laptop's width; a little taller than its screen).
    page.screenshot(
        path=str(shots / "desk-claim.png"), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1240}
    )

    # Submit with the keyboard.
    page.locator("h1").click()
    page.keyboard.press("s")
    page.wait_for_url(re.compile(r".*ok=submit$"))
    assert page.get_by_role("status").inner_text() == "Submitted for review."
    assert "In review" in page.locator(".claim-head").inner_text()
    _sign_out(page, base)

    # Another editor approves from the review page, with "a".
    _sign_in(page, base, "tomas@demo.claimdesk.test")
    page.get_by_role("link", name="Review", exact=True).click()
    awaiting = page.locator("section[aria-labelledby=awaiting-h]")
    assert "As many as 7,500 homes" in awaiting.inner_text()
    awaiting.locator(".claim-row", has_text="As many as 7,500 homes").get_by_role("link", name="Review").click()
    page.wait_for_url(re.compile(rf".*/desk/claims/{claim_id}#review-actions$"))
    page.locator("h1").click()
    page.keyboard.press("a")
    page.wait_for_url(re.compile(r".*ok=approve$"))
    assert "Published" in page.locator(".claim-head").inner_text()
    with database.read_session() as session:
        stored = claims_service.get_claim(session, claim_id)
        assert (stored.state, stored.verdict_rating, stored.public) == ("published", "partly_confirmed", True)
        assert stored.verdict_author_id == _principal(database, "ayo@demo.claimdesk.test").user_id

    # Anyone can open the public page, and it shows the verdict.
    page.get_by_role("link", name=f"/public/fact-checks/{claim_id}").click()
    page.wait_for_url(f"{base}/public/fact-checks/{claim_id}")
    text = page.locator("body").inner_text()
    assert "Partly confirmed" in text
    assert "About 6,900 homes were flooded" in text
    assert page.js_errors == []


def test_the_desk_at_a_phones_width(demo_desk: tuple[str, Database], browser: Any) -> None:
    base, _ = demo_desk
    page = _page(browser, PHONE)
    _sign_in(page, base, "mira@demo.claimdesk.test")
    _no_sideways_scroll(page)
    next_button = page.get_by_role("button", name="Next claim")
    assert next_button.is_visible()
    box = next_button.bounding_box()
    assert box is not None and box["width"] > PHONE["width"] / 2  # full width, easy to hit
    # Everything is reachable from the keyboard: tab to the first queued claim and open it.
    page.locator("section[aria-labelledby=queued-h] .claim-link").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/desk/claims/\d+$"))
    _no_sideways_scroll(page)
    assert page.get_by_role("heading", name="Timeline").is_visible()
    # The claim mira submitted for review: the workspace reads well on a phone too.
    page.goto(f"{base}/desk/claims/5")
    _no_sideways_scroll(page)
    assert "Partly confirmed" in page.locator(".verdict-box").inner_text()
    # A file over the limit is refused in the browser before a byte is sent (the server checks too).
    page.locator("form[data-upload]").evaluate("form => form.setAttribute('data-max-bytes', '1000')")
    _drop_file(page, ".dropzone", "too-big.png", png_bytes(200, 200), "image/png")
    page.get_by_role("button", name="Upload").click()
    assert "the upload limit is 1000 bytes" in page.locator(".upload-problem").inner_text()
    assert page.url == f"{base}/desk/claims/5"
    assert page.js_errors == []
