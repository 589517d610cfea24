"""Screenshots (artifacts/screenshots/, git-ignored) at desktop and phone sizes, and phone layouts
that fit the screen's width. The tuner is captured mid-run, the run detail page finished.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    FAST_RUN,
    LONG_RUN,
    PASSWORD,
    PHONE,
    RUN_TIMEOUT_MS,
    Tuner,
    has_horizontal_overflow,
    login,
)

THREE_OR_MORE = re.compile(r"^([3-9]|[1-9]\d+)$")


def wait_detail_loaded(page) -> None:
    expect(page.locator("#confusion-matrix")).to_be_visible()
    expect(page.locator("#misclassified .misclassified-item").first).to_be_visible()
    expect(page.locator("#filters canvas.filter").first).to_be_visible()
    page.click("#predict-random")
    expect(page.locator("#predict-result .probability")).to_have_count(10)


def assert_fits(page, what: str) -> None:
    overflow = has_horizontal_overflow(page)
    assert overflow is None, f"{what} is wider than the phone screen: {overflow}"


@pytest.mark.browser
def test_screenshots_and_phone_layout(celery_worker, user, tuner, open_page, screenshot_dir):
    desktop = tuner.page
    tuner.configure(FAST_RUN)
    finished = tuner.start(name="finished run")
    tuner.wait_status("succeeded")

    # The tuner mid-run: a long run, captured once a few epochs are drawn, then cancelled.
    tuner.configure(LONG_RUN)
    running = tuner.start(name="mid-run screenshot")
    expect(desktop.locator("#loss-chart")).to_have_attribute("data-points", THREE_OR_MORE, timeout=RUN_TIMEOUT_MS)
    expect(desktop.locator("#run-status")).to_have_text("running")
    desktop.screenshot(path=screenshot_dir / "tuner-midrun-desktop.png", full_page=True)

    phone = open_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    login(phone, user.username, PASSWORD, next_path=f"/?run={running}")
    Tuner(phone).wait_ready()
    expect(phone.locator("#current-run")).to_have_attribute("data-experiment-id", str(running))
    expect(phone.locator("#loss-chart")).to_have_attribute("data-points", THREE_OR_MORE, timeout=RUN_TIMEOUT_MS)
    expect(phone.locator("#run-status")).to_have_text("running")
    expect(phone.locator("#tuner .param").first).to_be_visible()
    assert_fits(phone, "the tuner page")
    phone.screenshot(path=screenshot_dir / "tuner-midrun-phone.png", full_page=True)

    desktop.click("#cancel-button")
    tuner.wait_status("cancelled", "succeeded")
    expect(phone.locator("#run-status")).to_have_text("cancelled")  # the phone follows the same run

    # The finished run's detail page.
    desktop.goto(f"/runs/{finished}/")
    wait_detail_loaded(desktop)
    desktop.screenshot(path=screenshot_dir / "run-detail-desktop.png", full_page=True)
    phone.goto(f"/runs/{finished}/")
    wait_detail_loaded(phone)
    assert_fits(phone, "the run detail page")
    phone.screenshot(path=screenshot_dir / "run-detail-phone.png", full_page=True)

    desktop.goto("/history/")
    desktop.locator(f"tr[data-experiment-id='{finished}'] input.compare-checkbox").check()
    expect(desktop.locator("#compare-chart")).to_have_attribute("data-series", "1")
    desktop.screenshot(path=screenshot_dir / "history-desktop.png", full_page=True)

    # The other pages fit a phone too.
    phone.goto("/history/")
    expect(phone.locator("#runs-table tbody tr[data-experiment-id]")).to_have_count(2)
    assert_fits(phone, "the history page")
    phone.screenshot(path=screenshot_dir / "history-phone.png", full_page=True)

    for name in ("tuner-midrun-desktop", "tuner-midrun-phone", "run-detail-desktop", "run-detail-phone"):
        assert (screenshot_dir / f"{name}.png").stat().st_size > 10_000
