"""The intake pages: paste an article, read its candidates, accept one as a claim."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import DeskPerson, sign_in

ARTICLE = (
    "Heavy rain flooded the Valley district on Tuesday. "
    "The regional governor said 40 people died in the district. "
    "A relief agency estimated that up to 9,000 homes were flooded. "
    "The dam was built in 1987, according to officials."
)


def _paste(client: TestClient, csrf: str, **extra: str) -> str:
    data = {"csrf": csrf, "text": ARTICLE, "url": "https://news.example/flood", "outlet": "Valley Courier", **extra}
    response = client.post("/desk/intake", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/desk/intake/articles/\d+\?ok=article_read", location)
    return location.split("?")[0]


def test_intake_needs_sign_in_and_the_contributor_role(client: TestClient, people: dict[str, DeskPerson]) -> None:
    response = client.get("/desk/intake", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/desk/signin?next=")
    sign_in(client, people["viewer"])
    response = client.get("/desk/intake")
    assert response.status_code == 403
    assert 'role="alert"' in response.text
    csrf = sign_in(client, people["viewer"])
    response = client.post("/desk/intake", data={"csrf": csrf, "text": ARTICLE})
    assert response.status_code == 403


def test_paste_read_accept_makes_the_claim(client: TestClient, people: dict[str, DeskPerson]) -> None:
    who = people["contributor"]
    csrf = sign_in(client, who)
    page_url = _paste(client, csrf, published_at="2026-11-24T09:30")
    page = client.get(page_url + "?ok=article_read")
    assert page.status_code == 200
    html = page.text
    assert "Article read" in html
    assert "The regional governor" in html
    assert '<mark class="figure-mark">40</mark>' in html  # the figure, highlighted in the sentence
    assert '<mark class="figure-mark">up to 9,000</mark>' in html
    assert "up to 9,000 homes flooded" in html
    assert "<li>40 people died</li>" in html
    assert "in 1987" in html  # a date
    assert 'id="span-0"' in html  # the span, marked in the article text
    assert "24 Nov 2026, 09:30 UTC" in html
    article_id = int(page_url.rsplit("/", 1)[1])

    response = client.post(
        f"/desk/intake/articles/{article_id}/candidates/0/accept",
        data={"csrf": csrf, "priority": "high", "tags": "flood, valley"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{page_url}?ok=accepted#candidate-0"
    page = client.get(response.headers["location"]).text
    found = re.search(r'href="/desk/claims/(\d+)">Claim #\d+', page)
    assert found, page
    claim = client.get(f"/api/v1/claims/{found.group(1)}", headers=who.headers).json()
    assert claim["text"] == "The regional governor said 40 people died in the district."
    assert claim["claimant"] == "The regional governor"
    assert claim["figure"]["low"] == 40
    assert claim["figure"]["as_of"] == "2026-11-24"
    assert claim["priority"] == "high"
    assert sorted(claim["tags"]) == ["flood", "valley"]
    assert claim["appearance_url"] == "https://news.example/flood"
    assert claim["state"] == "submitted"

    # Accepting again is refused in place, on the article page, with the reason.
    again = client.post(
        f"/desk/intake/articles/{article_id}/candidates/0/accept", data={"csrf": csrf}, follow_redirects=False
    )
    assert again.status_code == 409
    assert "already accepted" in again.text
    assert 'role="alert"' in again.text
    # The list of recent articles counts it.
    listing = client.get("/desk/intake").text
    assert f'href="/desk/intake/articles/{article_id}"' in listing
    assert "1 accepted" in listing


def test_a_refused_accept_keeps_what_was_typed(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["editor"])
    page_url = _paste(client, csrf)
    article_id = int(page_url.rsplit("/", 1)[1])
    response = client.post(
        f"/desk/intake/articles/{article_id}/candidates/1/accept",
        data={"csrf": csrf, "claimant": "The relief agency", "tags": "bad tag, ok", "priority": "high"},
    )
    assert response.status_code == 422
    html = response.text
    assert 'id="problem-1"' in html
    assert 'id="tags-1" name="tags" type="text" value="bad tag, ok" aria-invalid="true"' in html
    assert 'value="The relief agency"' in html
    assert '<option value="high" selected>' in html
    # Nothing was accepted.
    assert "Accepted</span>" not in html


def test_a_refused_article_is_shown_in_place_with_the_text_kept(
    client: TestClient, people: dict[str, DeskPerson]
) -> None:
    csrf = sign_in(client, people["contributor"])
    response = client.post(
        "/desk/intake",
        data={"csrf": csrf, "text": ARTICLE, "url": "ftp://news.example/x", "outlet": "Courier"},
    )
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert (
        'name="url" type="url" inputmode="url" maxlength="2048" value="ftp://news.example/x" aria-invalid="true"'
        in (response.text)
    )
    assert "The regional governor said 40 people died" in response.text
    response = client.post("/desk/intake", data={"csrf": csrf, "text": "   "})
    assert response.status_code == 422
    assert 'name="text" rows="12" required aria-invalid="true"' in response.text


def test_csrf_is_required_and_nothing_is_stored_without_it(client: TestClient, people: dict[str, DeskPerson]) -> None:
    who = people["contributor"]
    sign_in(client, who)
    response = client.post("/desk/intake", data={"csrf": "forged", "text": ARTICLE})
    assert response.status_code == 403
    listing = client.get("/api/v1/intake/articles", headers=who.headers).json()
    assert listing["items"] == []


def test_other_contributors_articles_are_not_found(client: TestClient, people: dict[str, DeskPerson]) -> None:
    csrf = sign_in(client, people["contributor"])
    page_url = _paste(client, csrf)
    article_id = int(page_url.rsplit("/", 1)[1])
    csrf = sign_in(client, people["contributor2"])
    assert client.get(page_url).status_code == 404
    response = client.post(f"/desk/intake/articles/{article_id}/candidates/0/accept", data={"csrf": csrf})
    assert response.status_code == 404
    assert client.get("/desk/intake/articles/nope").status_code == 404
    # An editor sees it and may accept from it, as the API allows.
    csrf = sign_in(client, people["editor"])
    assert client.get(page_url).status_code == 200
    response = client.post(
        f"/desk/intake/articles/{article_id}/candidates/2/accept", data={"csrf": csrf}, follow_redirects=False
    )
    assert response.status_code == 303


def test_related_claims_show_under_an_accepted_candidate(client: TestClient, people: dict[str, DeskPerson]) -> None:
    who = people["editor"]
    csrf = sign_in(client, who)
    other = client.post(
        "/api/v1/claims",
        json={"text": "The mayor said over 100 people died in the Valley district flood.", "claimant": "The mayor"},
        headers=who.headers,
    )
    assert other.status_code == 201
    page_url = _paste(client, csrf)
    article_id = int(page_url.rsplit("/", 1)[1])
    # Before accepting: asked for, one candidate's related claims, and nothing is stored.
    html = client.get(page_url).text
    assert "Related claims" not in html
    assert f'href="{page_url}?related=0#candidate-0">Look for related claims' in html
    html = client.get(f"{page_url}?related=0").text
    assert "Related claims (2)" in html
    assert "40 vs 100" in html
    assert html.count("Look for related claims") == 2  # the other two candidates still offer it
    assert [c["id"] for c in client.get("/api/v1/claims", headers=who.headers).json()["items"]] == [other.json()["id"]]
    assert client.get(f"{page_url}?related=x").status_code == 200  # not a number: simply not asked

    response = client.post(f"/desk/intake/articles/{article_id}/candidates/0/accept", data={"csrf": csrf})
    assert response.status_code == 200
    claim_id = re.search(r"Claim #(\d+)", response.text)
    assert claim_id
    html = response.text
    assert "Related claims (2)" in html
    assert "Likely duplicates" in html
    assert "flagged when the claim was created" in html  # the API's reason, word for word
    assert "Other figures for the same thing" in html
    assert "40 vs 100" in html
    assert html.count(f'href="/desk/claims/{other.json()["id"]}"') == 2


# --- in a browser, at a phone's width -------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def phone(db_url: str) -> Iterator[Any]:
    if not db_url.startswith("sqlite"):
        pytest.skip("the browser run needs one backend only")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_context(viewport={"width": 375, "height": 740}).new_page()
            page.set_default_timeout(20_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.js_errors = errors
            yield page
        finally:
            browser.close()


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_intake_at_a_phones_width_with_the_keyboard(live_url: str, phone: Any, people: dict[str, DeskPerson]) -> None:
    who = people["contributor"]
    page = phone
    page.goto(f"{live_url}/desk/intake")
    page.get_by_label("Email").fill(who.email)
    page.get_by_label("Password").fill(who.password)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(f"{live_url}/desk/intake")
    _fits(page)

    page.get_by_label("Article text").fill(ARTICLE)
    page.get_by_label("Source URL").fill("https://news.example/flood")
    page.get_by_label("Outlet").fill("Valley Courier")
    page.get_by_role("button", name="Read the article").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/desk/intake/articles/\d+\?ok=article_read$"))
    assert page.get_by_role("status").inner_text() == "Article read: its check-worthy sentences are below."
    first = page.locator("#candidate-0")
    assert "The regional governor" in first.inner_text()
    assert first.locator("mark.figure-mark").inner_text() == "40"
    assert page.locator(".article-text mark").count() == 3
    _fits(page)

    # Open the adjustments and accept, from the keyboard alone.
    first.locator("summary").focus()
    page.keyboard.press("Enter")
    page.get_by_label("Priority").first.select_option("urgent")
    first.get_by_role("button", name="Accept as a claim").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*\?ok=accepted#candidate-0$"))
    link = page.locator("#candidate-0").get_by_role("link", name=re.compile(r"Claim #\d+: open its workspace"))
    assert link.is_visible()
    _fits(page)
    claim_id = re.search(r"/desk/claims/(\d+)", link.get_attribute("href") or "")
    assert claim_id
    response = page.request.get(f"{live_url}/api/v1/claims/{claim_id.group(1)}", headers=who.headers)
    assert response.json()["priority"] == "urgent"
    assert page.js_errors == []
