"""The sweep page follows a real sweep over its websocket alone: polling is turned off (`?poll=off`), a real
worker trains the trials, and the trial table, the best-so-far chart, the parallel coordinates and the
status update from pushed events; the page never reads GET /api/sweeps/<id>/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments import broker, services
from experiments.models import Experiment
from tests.browser.conftest import PASSWORD, login

FAST = {"hidden_layers": [16], "epochs": 3, "train_size": 1000, "batch_size": 64, "lr_schedule": "constant",
        "dropout": 0.0}
GRID = {"learning_rate": {"values": [0.003, 0.01, 0.001]}}

# Every (trial, status, epochs) the table showed, recorded by the page itself as rows change.
RECORD_ROWS = """() => {
  window.__rows = [];
  const body = document.getElementById('trials-body');
  const note = () => body.querySelectorAll('tr[data-trial-id]').forEach((row) => window.__rows.push(
    [row.dataset.trialId, row.dataset.status, row.children[4].textContent]));
  new MutationObserver(note).observe(body, {childList: true, subtree: true});
  note();
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_the_sweep_page_updates_from_pushes_with_polling_off(celery_worker, page, user, settings):
    settings.TUNER_DISPATCH_RUNS = False  # the first trial waits in the database until the page watches
    sweep = services.sweep_create(owner=user, base_config=FAST, space=GRID, strategy="grid", parallelism=1,
                                  seed=1, name="live grid")
    (first,) = Experiment.objects.filter(sweep=sweep)
    login(page, user.username, PASSWORD)
    detail_reads = []
    page.on("request", lambda request: detail_reads.append(request.url)
            if re.search(rf"/api/sweeps/{sweep.pk}/(\?.*)?$", request.url) else None)

    page.goto(f"/sweeps/{sweep.pk}/?poll=off")
    expect(page.locator("#sweep-page")).to_have_attribute("data-poll-fallback", "off")
    expect(page.locator("#sweep-connection-box")).to_have_attribute("data-state", "live")
    rows = page.locator("#trials-body tr[data-trial-id]")
    expect(rows).to_have_count(1)  # the snapshot
    expect(rows.first).to_have_attribute("data-status", "queued")
    expect(page.locator("#best-so-far-chart")).to_have_attribute("data-points", "0")
    page.evaluate(RECORD_ROWS)

    settings.TUNER_DISPATCH_RUNS = True
    assert broker.enqueue_run(experiment_id=first.pk, task_id=first.task_id)

    expect(page.locator("#sweep-status")).to_have_text("finished", timeout=120_000)
    expect(rows).to_have_count(3)
    for i in range(3):
        expect(rows.nth(i)).to_have_attribute("data-status", "succeeded")
        expect(rows.nth(i).locator("td").nth(4)).to_have_text("3")
    sweep.refresh_from_db()
    best = Experiment.objects.get(pk=sweep.best_trial_id)
    expect(page.locator("#sweep-best-value")).to_have_text(re.compile(r"^\d+\.\d\d ?%$"))
    expect(page.locator("#sweep-best-trial")).to_contain_text(f"run #{best.pk}")
    expect(page.locator(f"#trials-body tr[data-trial-id='{best.pk}']")).to_have_class(re.compile(r"\bbest-trial\b"))
    expect(page.locator("#best-so-far-chart")).to_have_attribute("data-points", "3")
    expect(page.locator("#parallel-chart")).to_have_attribute("data-lines", "3")
    expect(page.locator("#sweep-counts")).to_contain_text("3/3 trials finished")
    expect(page.locator("#sweep-connection-box")).to_have_attribute("data-state", "live")

    seen = page.evaluate("() => window.__rows")
    # Pushed as they happened: trials were shown running, mid-way through their epochs.
    assert any(status == "running" and epochs in ("1", "2") for _, status, epochs in seen), seen
    assert {trial for trial, _, _ in seen} == {str(t.pk) for t in Experiment.objects.filter(sweep=sweep)}
    assert detail_reads == [], detail_reads  # never polled


@pytest.mark.browser
def test_without_its_websocket_the_sweep_page_falls_back_to_polling(page, user, settings):
    settings.TUNER_DISPATCH_RUNS = False  # nothing trains: the test changes the sweep itself
    sweep = services.sweep_create(owner=user, base_config=FAST, space=GRID, strategy="grid", parallelism=1,
                                  seed=1, name="no socket")
    login(page, user.username, PASSWORD)
    page.route_web_socket(re.compile(r"/ws/sweeps/"), lambda ws: ws.close(code=1011, reason="test: no socket"))

    page.goto(f"/sweeps/{sweep.pk}/")
    expect(page.locator("#sweep-connection-box")).to_have_attribute("data-state", "polling")
    expect(page.locator("#trials-body tr[data-trial-id]")).to_have_count(1)
    with page.expect_request(re.compile(rf"/api/sweeps/{sweep.pk}/$")):  # it keeps polling while active
        services.sweep_cancel(sweep=sweep)
    expect(page.locator("#sweep-status")).to_have_text("cancelled")
    expect(page.locator("#trials-body tr[data-trial-id]").first).to_have_attribute("data-status", "cancelled")
