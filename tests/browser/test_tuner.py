"""The tuner page: controls generated from the schema, and one real run followed live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments.models import Experiment
from tests.browser.conftest import FAST_RUN

# Records, in the page, what the live view looked like whenever a log line was added and every
# value the progress bar took: what the test reads afterwards to tell "live" from "all at the end".
RECORDER = """() => {
  const status = document.getElementById('run-status');
  const chart = document.getElementById('loss-chart');
  const bar = document.getElementById('progress-bar');
  window.__lines = [];
  window.__progress = [];
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) {
      if (!(node instanceof Element) || !node.classList.contains('log-line')) continue;
      window.__lines.push({text: node.textContent, kind: node.className, status: status.textContent,
                           points: chart.dataset.points, t: performance.now()});
    }
  }).observe(document.getElementById('log-console'), {childList: true});
  new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('aria-valuenow'))))
    .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
}"""


@pytest.mark.browser
def test_sliders_and_number_boxes_stay_in_sync(tuner):
    page = tuner.page
    # Log-scale slider moved with the keyboard: the exact-value box follows.
    rate_box = tuner.number("learning_rate")
    expect(rate_box).to_have_value("0.001")
    before_slider = float(tuner.slider("learning_rate").input_value())
    tuner.slider("learning_rate").focus()
    page.keyboard.press("ArrowRight")
    expect(rate_box).not_to_have_value("0.001")
    assert float(rate_box.input_value()) > 0.001
    assert float(tuner.slider("learning_rate").input_value()) > before_slider
    expect(tuner.slider("learning_rate")).to_have_attribute("aria-valuetext", rate_box.input_value())
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert float(rate_box.input_value()) < 0.001

    # A value typed in the box moves the slider; one beyond the slider's range pins it at the end.
    epochs_box = tuner.number("epochs")
    epochs_box.fill("")
    epochs_box.press_sequentially("12")
    expect(tuner.slider("epochs")).to_have_value("12")
    epochs_box.fill("150")  # valid (<= 200) but past the slider's 100
    expect(tuner.slider("epochs")).to_have_value("100")
    expect(tuner.slider("epochs")).to_have_class(re.compile(r"\bout-of-range\b"))

    # Hidden layers: 1 to 3 rows, and the network summary counts the parameters.
    layers = page.locator("#hidden-layers .hidden-layer-size")
    expect(layers).to_have_count(2)  # default [256, 128]
    page.click("#add-layer")
    expect(layers).to_have_count(3)
    expect(page.locator("#add-layer")).to_be_disabled()
    page.locator("#hidden-layers .remove-layer").nth(2).click()
    page.locator("#hidden-layers .remove-layer").nth(1).click()
    expect(layers).to_have_count(1)
    expect(page.locator("#hidden-layers .remove-layer")).to_be_disabled()
    layers.first.fill("32")
    # 784*32+32 + 32*10+10 = 25 450
    expect(page.locator("#network-summary")).to_have_text("network 784 → 32 → 10 · 25,450 parameters")

    # A preset sets every control and says so; Reset brings the defaults back.
    page.click("button[data-preset='fast_check']")
    expect(page.locator("button[data-preset='fast_check']")).to_have_attribute("aria-pressed", "true")
    expect(tuner.number("epochs")).to_have_value("3")
    expect(tuner.number("train_size")).to_have_value("10000")
    tuner.number("epochs").fill("4")
    expect(page.locator("button[data-preset='fast_check']")).to_have_attribute("aria-pressed", "false")
    page.click("#reset-config")
    expect(page.locator("button[data-preset='default']")).to_have_attribute("aria-pressed", "true")
    expect(tuner.number("train_size")).to_have_value("")  # null = all the data
    expect(tuner.number("learning_rate")).to_have_value("0.001")


@pytest.mark.browser
def test_a_fast_run_is_followed_live_to_its_recommendations(celery_worker, tuner, live_url):
    page = tuner.page
    tuner.configure(FAST_RUN)  # fast_check preset, then train_size 1000, epochs 4, one layer of 32
    expect(tuner.number("train_size")).to_have_value("1000")
    expect(tuner.number("epochs")).to_have_value("4")
    page.evaluate(RECORDER)

    run_id = tuner.start(name="browser fast run")
    expect(page).to_have_url(f"{live_url}/?run={run_id}")
    expect(page.locator("#run-title")).to_contain_text(f"#{run_id}")
    expect(page.locator("#connection-state")).to_have_text("live")
    assert tuner.wait_status("succeeded") == "succeeded"

    # Everything arrived: one line per epoch, both charts, the bar, the analysis.
    expect(page.locator("#log-console .log-line.line-epoch")).to_have_count(4)
    expect(page.locator("#loss-chart")).to_have_attribute("data-points", "4")
    expect(page.locator("#accuracy-chart")).to_have_attribute("data-points", "4")
    expect(page.locator("#progress-bar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#progress-text")).to_have_text("epoch 4/4 · done")
    expect(page.locator("#eta")).to_have_text("done")
    expect(page.locator("#throughput")).to_have_text(re.compile(r"^[\d,]+ samples/s$"))
    expect(page.locator("#recommendations .recommendation").first).to_be_visible()
    expect(page.locator("#performance-summary")).to_have_attribute("data-category", re.compile(r"^\w+$"))
    expect(page.locator("#cancel-button")).to_be_disabled()
    first = page.locator("#recommendations .recommendation").first
    for part in (".badge", ".recommendation-title", ".recommendation-rationale", ".recommendation-changes",
                 "button.quick-apply", "button.apply-run"):
        expect(first.locator(part)).to_have_count(1)

    # ... and it arrived live: epoch by epoch while the run was running, not in one final batch.
    lines = page.evaluate("window.__lines")
    epochs = [line for line in lines if "line-epoch" in line["kind"]]
    assert [re.match(r"> epoch (\d+)/4 ", line["text"]).group(1) for line in epochs] == ["1", "2", "3", "4"]
    assert epochs[0]["status"] == "running", lines
    assert epochs[-1]["t"] > epochs[0]["t"]
    statuses = [line["text"] for line in lines if "line-epoch" not in line["kind"]]
    assert statuses[-1].startswith("> status → succeeded"), statuses
    assert [line["text"] for line in lines].index(statuses[-1]) > [line["text"] for line in lines].index(
        epochs[-1]["text"])
    progress = page.evaluate("window.__progress")
    assert any(0 < value < 100 for value in progress), progress
    moving = progress[next(i for i, value in enumerate(progress) if value > 0):]
    assert moving == sorted(moving), f"the progress bar went backwards: {progress}"

    run = Experiment.objects.get(pk=run_id)
    assert (run.status, run.epochs_done, run.name) == ("succeeded", 4, "browser fast run")
    assert run.config["hidden_layers"] == [32] and run.config["train_size"] == 1000

    # The run's URL shows the same run after a reload, controls included (from the snapshot).
    page.reload()
    tuner.wait_ready()
    expect(page.locator("#current-run")).to_have_attribute("data-experiment-id", str(run_id))
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#log-console .log-line.line-epoch")).to_have_count(4)
    expect(page.locator("#loss-chart")).to_have_attribute("data-points", "4")
    expect(tuner.number("epochs")).to_have_value("4")
    expect(tuner.number("train_size")).to_have_value("1000")
    expect(page.locator("#hidden-layers .hidden-layer-size")).to_have_count(1)
    expect(page.locator("#hidden-layers .hidden-layer-size").first).to_have_value("32")


@pytest.mark.browser
def test_a_run_that_is_not_yours_is_refused(tuner, other_user):
    page = tuner.page
    foreign = Experiment.objects.create(owner=other_user, name="bob's", config=dict(FAST_RUN))
    for run_id in (foreign.pk, foreign.pk + 1000):  # someone else's, and one that does not exist
        tuner.open(f"?run={run_id}")
        expect(page.locator("#connection-state")).to_have_text("refused")
        expect(page.locator("#run-error")).to_have_text(
            f"Run #{run_id} cannot be shown: it does not exist, is not yours, or your session expired.")
        expect(page.locator("#cancel-button")).to_be_disabled()
        expect(page.locator("#log-console .log-line")).to_have_count(0)
        expect(page.locator("#run-name")).to_have_value("")
