"""The live diagnosis on the run page (DOM_CONTRACT.md "Run detail" / live diagnosis): a finding
appears while the run trains, and a run started from the tuner with "Stop on a critical diagnosis"
stops with the reason."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments import services
from experiments.models import Experiment

# sgd at 1e-5 stays near chance (a not_learning finding at epoch 2); long enough to watch live.
STUCK = {"hidden_layers": [256, 128], "train_size": 5000, "batch_size": 64, "lr_schedule": "constant",
         "dropout": 0.0, "optimizer": "sgd", "learning_rate": 1e-5, "epochs": 200}


@pytest.mark.browser
def test_a_finding_appears_live_while_the_run_trains(celery_worker, tuner, user):
    page = tuner.page
    experiment = services.experiment_create(owner=user, config=STUCK, name="stuck")
    page.goto(f"/runs/{experiment.pk}/")
    panel = page.locator("#diagnosis-panel")
    expect(panel).to_be_visible()
    finding = page.locator("#diagnosis-list li.diagnosis[data-kind='not_learning']")
    expect(finding).to_be_visible(timeout=60_000)
    expect(page.locator("#detail-status")).to_have_text("running")  # shown live, not after the end
    expect(finding).to_have_attribute("data-severity", "critical")
    expect(finding.locator(".diagnosis-epoch")).to_have_text("epoch 2")
    expect(finding.locator(".diagnosis-message")).to_contain_text("not learning — val ")
    expect(finding.locator(".diagnosis-changes")).to_have_text("suggested: learning_rate → 0.0001")
    expect(panel).to_have_attribute("data-state", "critical")
    expect(page.locator("#diagnosis-stop")).to_have_text("Findings are shown; the run goes on.")
    services.experiment_cancel(experiment=Experiment.objects.get(pk=experiment.pk))
    expect(page.locator("#detail-status")).to_have_text("cancelled", timeout=30_000)
    expect(finding).to_have_count(1)


@pytest.mark.browser
def test_stop_on_a_critical_diagnosis_from_the_tuner(celery_worker, tuner, screenshot_dir):
    tuner.open()
    tuner.configure({**STUCK, "epochs": 20, "hidden_layers": [32], "train_size": 1000})
    tuner.page.check("#stop-on-diagnosis")
    run_id = tuner.start(name="stops")
    tuner.wait_status("succeeded")
    run = Experiment.objects.get(pk=run_id)
    assert run.stop_on_diagnosis and run.epochs_done == 2
    tuner.page.goto(f"/runs/{run_id}/")
    expect(tuner.page.locator("#diagnosis-stop")).to_have_text(re.compile(r"^stopped at epoch 2: not learning — "))
    expect(tuner.page.locator("#diagnosis-stop")).to_have_class(re.compile("diagnosis-stopped"))
    expect(tuner.page.locator("#diagnosis-summary")).to_have_text("1 finding, 1 critical")
    tuner.page.screenshot(path=str(screenshot_dir / "run-live-diagnosis-stopped.png"), full_page=True)
