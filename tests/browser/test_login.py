"""The login page, through the real form."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Tuner


@pytest.mark.browser
def test_a_wrong_password_is_refused_and_the_right_one_lands_on_the_tuner(user, page, live_url):
    page.goto("/")
    expect(page).to_have_url(f"{live_url}/login/?next=/")
    expect(page.locator("canvas#matrix-rain")).to_be_attached()

    page.fill("#id_username", user.username)
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".form-error[role=alert]")).to_have_text("Wrong username or password. Try again.")
    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.locator("#id_username")).to_have_value(user.username)  # kept for the second try
    expect(page.locator("#id_password")).to_have_value("")
    expect(page.locator(".site-nav")).to_have_count(0)  # still logged out

    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_url}/")
    Tuner(page).wait_ready()
    expect(page.locator("#run-button")).to_have_text("INITIALIZE TRAINING SEQUENCE")
    expect(page.locator(".logout-form button")).to_contain_text(user.username)
    expect(page.locator("#current-run")).to_have_attribute("data-experiment-id", "")
    expect(page.locator("#run-status")).to_have_text("idle")
    assert page.evaluate("window.TunerRain.isRunning()") is True

    # Logged in, the login page sends you on instead of showing the form again.
    page.goto("/login/")
    expect(page).to_have_url(f"{live_url}/")
