"""Find the fix from the run page: one click, the candidates train on a real worker, the panel fills
with their measured gains and the verdict (a verified card on top, or "nothing helped")."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments import services
from experiments.models import Experiment, Sweep
from tests.conftest import wait_for

# Plain SGD at a tiny rate: diagnosable (the rate is too low), a fraction of a second an epoch.
SLOW_SGD = {"optimizer": "sgd", "learning_rate": 1e-4, "hidden_layers": [32], "epochs": 3, "train_size": 2000,
            "batch_size": 64, "lr_schedule": "constant", "dropout": 0.0, "seed": 5}


@pytest.mark.browser
@pytest.mark.slow
def test_find_the_fix_fills_the_panel_with_measured_gains_and_a_verdict(celery_worker, tuner, user, screenshot_dir):
    page = tuner.page
    parent = services.experiment_create(owner=user, config=SLOW_SGD, name="slow sgd")
    wait_for(lambda: Experiment.objects.filter(pk=parent.pk, status="succeeded", post_run_pending=False).exists(),
             120, message="the parent and its advice")
    page.goto(f"/runs/{parent.pk}/")
    panel = page.locator("#fix-panel")
    button = page.locator("#find-fix")
    expect(button).to_be_visible()
    expect(panel).to_have_attribute("data-state", "ready")

    button.click()

    rows = page.locator("#fix-candidates-body tr.fix-row")
    expect(rows.first).to_be_visible()
    count = rows.count()
    assert 2 <= count <= 4
    expect(button).to_be_hidden()  # one fix at a time
    expect(page.locator("#fix-verdict")).to_contain_text(re.compile(r"^(Verified: |Tried \d changes?; none beat)"),
                                                         timeout=180_000)
    expect(panel).to_have_attribute("data-state", "done")
    for i in range(count):
        expect(rows.nth(i).locator(".fix-gain")).to_have_text(re.compile(r"^[+−±]\d+\.\d pts$"))
    sweep = Sweep.objects.get(fix_of=parent)
    if sweep.fix_result["winner"] is not None:
        winner = rows.nth(sweep.fix_result["winner"])
        expect(winner).to_have_class(re.compile(r"\bfix-winner\b"))
        trial = sweep.fix_result["candidates"][sweep.fix_result["winner"]]["trial"]
        expect(page.locator("#fix-open-winner")).to_have_attribute("href", f"/runs/{trial}/")
        expect(page.locator("#fix-apply")).to_be_visible()
        # The verified card arrived over the websocket and tops the recommendations.
        expect(page.locator("#recommendations .recommendation").first).to_have_attribute("data-kind", "verified_fix")
    else:
        expect(page.locator("#recommendations .recommendation[data-kind='verified_none']")).to_have_count(1)
    page.screenshot(path=str(screenshot_dir / "run-find-the-fix.png"), full_page=True)
