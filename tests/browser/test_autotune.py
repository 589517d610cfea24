"""Tune for me from the tuner page: a 1-minute autotune started with the button opens its sweep page,
whose anytime curve fills live as a real worker finishes trials; a bad budget is refused on the page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments import services
from experiments.models import Experiment, Sweep


@pytest.mark.browser
@pytest.mark.slow
def test_tune_for_me_opens_the_sweep_page_and_its_anytime_curve_fills(celery_worker, tuner):
    page = tuner.page
    tuner.set_layers([16])  # kept below: small, fast trials
    button = page.locator("#autotune-button")
    expect(button).to_be_enabled()

    page.fill("#autotune-minutes-number", "0")
    button.click()
    expect(page.locator("#autotune-error")).to_have_text(re.compile("between 1 and 120"))
    assert not Sweep.objects.exists()

    page.fill("#autotune-minutes-number", "1")
    expect(page.locator("#autotune-minutes")).to_have_value("1")  # the slider follows the box
    page.locator("summary", has_text="Keep my current settings").click()
    page.check("#autotune-keep-hidden_layers")
    button.click()

    page.wait_for_url(re.compile(r"/sweeps/\d+/$"))
    sweep = Sweep.objects.get()
    assert sweep.autotune and sweep.time_budget_seconds == 60
    assert sweep.base_config["hidden_layers"] == [16] and "hidden_layers" not in sweep.space
    expect(page.locator("#sweep-page")).to_have_attribute("data-sweep-id", str(sweep.pk))
    panel = page.locator("#anytime-panel")
    expect(panel).to_be_hidden()  # no trial has finished yet
    # The first finished trial arrives over the websocket: the curve appears and then grows.
    expect(panel).to_be_visible(timeout=60_000)
    chart = page.locator("#anytime-chart")
    expect(chart).not_to_have_attribute("data-points", "0")
    expect(page.locator("#anytime-summary")).to_have_text(re.compile(r"best val \d+\.\d\d% .* of a 1-min budget"))
    first = int(chart.get_attribute("data-points"))
    assert all(t.sweep_rung == 0 for t in Experiment.objects.filter(sweep=sweep, status="succeeded"))
    services.sweep_cancel(sweep=Sweep.objects.get(pk=sweep.pk))  # the rest of the minute is not needed
    expect(page.locator("#sweep-status")).to_have_text("cancelled", timeout=30_000)
    assert int(chart.get_attribute("data-points")) >= first
