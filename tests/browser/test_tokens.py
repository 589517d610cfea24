"""The API tokens page and the login lockout, in Chromium against the real Daphne."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, login


def api_status(live_url: str, token: str) -> int:
    request = urllib.request.Request(f"{live_url}/api/experiments/", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.browser
def test_create_a_token_use_it_and_revoke_it(user, page, live_url):
    login(page, user.username, PASSWORD, "/tokens/")
    expect(page.locator(".site-nav a[aria-current=page]")).to_have_text("Tokens")
    expect(page.locator("#tokens-message")).to_have_text("No tokens yet. Create one above.")
    expect(page.locator("#token-secret-box")).to_be_hidden()

    page.click("#token-create")
    expect(page.locator("#token-secret-box")).to_be_visible()
    secret = page.locator("#token-secret").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    rows = page.locator("#tokens-body tr[data-token-id]")
    expect(rows).to_have_count(1)
    expect(page.locator("#tokens-count")).to_have_text("(1)")
    expect(rows.first).to_contain_text("in 30 days")
    assert secret not in page.locator("#tokens-table").inner_text()
    assert api_status(live_url, secret) == 200

    page.click("#token-create")  # a second one; the page shows the newest secret only
    expect(rows).to_have_count(2)
    page.reload()  # the list comes from the server, never with a secret
    expect(rows).to_have_count(2)
    expect(page.locator("#token-secret-box")).to_be_hidden()

    token_id = rows.last.get_attribute("data-token-id")  # the older: the first secret's
    rows.last.locator("button.token-revoke").click()
    expect(page.locator(f"#tokens-body tr[data-token-id='{token_id}']")).to_have_count(0)
    expect(rows).to_have_count(1)
    assert api_status(live_url, secret) == 401


@pytest.mark.browser
def test_five_wrong_passwords_lock_the_login_form(user, page, console):
    console.expect_failed_request(429, "/login/")
    page.goto("/login/")
    for attempt in range(5):
        page.fill("#id_username", user.username)
        page.fill("#id_password", f"wrong-{attempt}")
        page.click("button[type=submit]")
    expect(page.locator(".form-error[role=alert]")).to_contain_text("Too many failed login attempts")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".form-error[role=alert]")).to_contain_text("Try again in 15 minutes")
    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.locator(".site-nav")).to_have_count(0)  # still logged out
