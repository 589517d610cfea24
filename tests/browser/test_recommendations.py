"""Acting on recommendations from the tuner page: Quick Apply and Apply & Run.

A diverging run (plain SGD at learning rate 8) reliably gets a critical "divergence" advice
that lowers the learning rate, with both buttons enabled.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments.models import Experiment
from tests.browser.conftest import DIVERGING_RUN, RUN_TIMEOUT_MS

FINISHED = ("succeeded", "failed", "diverged", "cancelled")


def diverge(tuner):
    """Run the diverging config; the divergence advice's element."""
    tuner.configure(DIVERGING_RUN)
    expect(tuner.number("learning_rate")).to_have_value("8")
    expect(tuner.slider("learning_rate")).to_have_class(re.compile(r"\bout-of-range\b"))  # the slider stops at 1
    parent_id = tuner.start(name="too hot")
    tuner.wait_status("diverged")
    advice = tuner.page.locator("#recommendations .recommendation[data-kind='divergence']")
    expect(advice).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    expect(advice.locator(".badge")).to_have_text("critical")
    expect(advice.locator(".recommendation-changes")).to_contain_text("learning_rate: 8 → ")
    return parent_id, advice


@pytest.mark.browser
def test_quick_apply_moves_the_sliders_and_marks_the_changed_fields(celery_worker, tuner):
    page = tuner.page
    parent_id, advice = diverge(tuner)
    quick = advice.locator("button.quick-apply")
    expect(quick).to_be_enabled()
    changed_fields = advice.locator(".recommendation-change").evaluate_all(
        "items => items.map((item) => item.dataset.field)")
    assert "learning_rate" in changed_fields
    slider_before = tuner.slider("learning_rate").input_value()

    quick.click()

    rate = float(tuner.number("learning_rate").input_value())
    assert 0 < rate < 8
    assert tuner.slider("learning_rate").input_value() != slider_before
    expect(tuner.slider("learning_rate")).not_to_have_class(re.compile(r"\bout-of-range\b"))
    for field in changed_fields:
        expect(tuner.field(field)).to_have_class(re.compile(r"\bchanged\b"))
    expect(tuner.field("learning_rate")).to_have_class(re.compile(r"\bhighlight\b"))
    expect(tuner.field("epochs")).not_to_have_class(re.compile(r"\bchanged\b"))
    expect(page.locator("#apply-status")).to_contain_text("Press INITIALIZE TRAINING SEQUENCE")
    # Nothing was started: the page still shows the diverged parent.
    expect(page.locator("#current-run")).to_have_attribute("data-experiment-id", str(parent_id))
    assert Experiment.objects.count() == 1

    # The flash fades after a couple of seconds; the "changed" mark stays until the field is edited.
    expect(tuner.field("learning_rate")).not_to_have_class(re.compile(r"\bhighlight\b"), timeout=5_000)
    expect(tuner.field("learning_rate")).to_have_class(re.compile(r"\bchanged\b"))
    tuner.number("learning_rate").fill("0.05")
    expect(tuner.field("learning_rate")).not_to_have_class(re.compile(r"\bchanged\b"))


@pytest.mark.browser
def test_apply_and_run_queues_a_child_run_listed_with_its_lineage(celery_worker, tuner, live_url):
    page = tuner.page
    parent_id, advice = diverge(tuner)
    advice_id = int(advice.get_attribute("data-id"))

    advice.locator("button.apply-run").click()

    page.wait_for_function(
        "parent => !['', parent].includes(document.getElementById('current-run').dataset.experimentId)",
        arg=str(parent_id))
    child_id = tuner.run_id()
    expect(page).to_have_url(f"{live_url}/?run={child_id}")
    expect(page.locator("#apply-status")).to_contain_text(f"Queued run #{child_id}")
    expect(tuner.field("learning_rate")).to_have_class(re.compile(r"\bchanged\b"))
    assert float(tuner.number("learning_rate").input_value()) < 8
    tuner.wait_status(*FINISHED)

    child = Experiment.objects.get(pk=child_id)
    assert child.parent_id == parent_id
    assert child.source_recommendation_id == advice_id
    assert child.config["learning_rate"] < 8

    page.goto("/history/")
    child_row = page.locator(f"#runs-table tr[data-experiment-id='{child_id}']")
    parent_row = page.locator(f"#runs-table tr[data-experiment-id='{parent_id}']")
    expect(child_row).to_be_visible()
    expect(child_row.locator(".col-lineage")).to_have_text(f"← #{parent_id}")
    expect(child_row.locator(".col-lineage a")).to_have_attribute("href", f"/runs/{parent_id}/")
    expect(parent_row.locator(".col-lineage")).to_have_text("–")
    expect(parent_row.locator(".status")).to_have_text("diverged")
