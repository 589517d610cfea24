"""Cancelling a run from the tuner page, and server-side validation errors shown per field."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments.models import Experiment
from tests.browser.conftest import LONG_RUN, RUN_TIMEOUT_MS


@pytest.mark.browser
def test_a_running_run_is_cancelled_from_the_page(celery_worker, tuner):
    page = tuner.page
    tuner.configure(LONG_RUN)  # 40 epochs of 5 000 images: many seconds, cancelled after the first epoch
    run_id = tuner.start(name="to cancel")
    expect(page.locator("#log-console .log-line.line-epoch").first).to_contain_text(
        "epoch 1/40", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#cancel-button")).to_be_enabled()

    page.click("#cancel-button")

    assert tuner.wait_status("cancelled", "succeeded") == "cancelled"
    # Not necessarily the last line: the API's "cancel requested" log event may come after it.
    expect(page.locator("#log-console .log-line").filter(has_text="status → cancelled")).to_have_count(1)
    expect(page.locator("#cancel-button")).to_be_disabled()
    expect(page.locator("#cancel-button")).to_have_text("Cancel")
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"^cancelled at epoch \d+/40$"))
    run = Experiment.objects.get(pk=run_id)
    assert run.status == "cancelled"
    assert 1 <= run.epochs_done < 40
    shown = page.locator("#log-console .log-line.line-epoch").count()
    assert shown == run.epochs_done


@pytest.mark.parametrize(("values", "field", "message"), [
    # The number box takes any integer; only the server's schema says a batch needs a sample.
    ({"batch_size": 0}, "batch_size", "Value must be between 1 and 4096, got 0."),
    # Each value is fine alone: only the server checks one against the other.
    ({"epochs": 3, "warmup_epochs": 5}, "warmup_epochs",
     "Warm-up (5 epochs) must be shorter than the run (3 epochs)."),
], ids=["batch_size-0", "warmup-not-shorter-than-run"])
@pytest.mark.browser
def test_a_validation_error_from_the_server_is_shown_next_to_its_field(tuner, console, values, field, message):
    page = tuner.page
    console.expect_failed_request(400, "/api/experiments/")
    tuner.configure(values)

    page.click("#run-button")

    error = page.locator(f"#field-error-{field}")
    expect(error).to_have_text(message)
    expect(tuner.field(field)).to_have_class(re.compile(r"\bhas-error\b"))
    expect(tuner.number(field)).to_have_attribute("aria-invalid", "true")
    expect(tuner.number(field)).to_be_focused()
    expect(page.locator("#form-error")).to_have_text("Some hyperparameters are invalid: see the highlighted fields.")
    others = page.locator(".field-error").evaluate_all(
        "nodes => nodes.filter((node) => node.textContent.trim()).map((node) => node.id)")
    assert others == [f"field-error-{field}"]
    expect(page.locator("#current-run")).to_have_attribute("data-experiment-id", "")
    expect(page.locator("#run-button")).to_be_enabled()
    assert not Experiment.objects.exists()

    # Editing the field clears its error.
    tuner.number(field).fill("2" if field == "warmup_epochs" else "64")
    expect(error).to_have_text("")
    expect(tuner.field(field)).not_to_have_class(re.compile(r"\bhas-error\b"))
