"""The history page and a finished run's detail page (DOM_CONTRACT.md "History" / "Run detail")."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from experiments.models import Experiment
from tests.browser.conftest import FAST_RUN, Tuner


def finished_runs(tuner: Tuner) -> tuple[int, int]:
    """Two small runs trained through the tuner page: (alpha, beta)."""
    tuner.configure(FAST_RUN)
    alpha = tuner.start(name="alpha")
    tuner.wait_status("succeeded")
    tuner.configure({**FAST_RUN, "epochs": 3, "hidden_layers": [16]})
    beta = tuner.start(name="beta")
    tuner.wait_status("succeeded")
    return alpha, beta


@pytest.mark.browser
def test_history_lists_sorts_filters_and_compares_runs(celery_worker, tuner, live_url):
    page = tuner.page
    alpha, beta = finished_runs(tuner)

    page.goto("/history/")
    rows = page.locator("#runs-table tbody tr[data-experiment-id]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-experiment-id", str(beta))  # newest first
    alpha_row = page.locator(f"#runs-table tr[data-experiment-id='{alpha}']")
    expect(alpha_row.locator(".status")).to_have_text("succeeded")
    expect(alpha_row.locator(".run-name")).to_have_text("alpha")
    expect(alpha_row.locator(".col-hidden")).to_have_text("32")
    expect(alpha_row.locator("a.run-link")).to_have_attribute("href", f"/runs/{alpha}/")

    # Sorting by best validation accuracy, both directions.
    by_accuracy = sorted(Experiment.objects.all(), key=lambda run: run.best_val_accuracy)
    header = page.locator("button[data-sort='best_val_accuracy']")
    header.click()
    expect(header.locator("xpath=..")).to_have_attribute("aria-sort", "descending")
    expect(rows.first).to_have_attribute("data-experiment-id", str(by_accuracy[-1].pk))
    header.click()
    expect(header.locator("xpath=..")).to_have_attribute("aria-sort", "ascending")
    expect(rows.first).to_have_attribute("data-experiment-id", str(by_accuracy[0].pk))
    expect(page).to_have_url(re.compile(r"[?&]sort=best_val_accuracy\b"))

    # Overlaying the validation curves of the ticked runs.
    expect(page.locator("#compare-chart")).to_have_attribute("data-series", "0")
    for run_id in (alpha, beta):
        page.locator(f"tr[data-experiment-id='{run_id}'] input.compare-checkbox").check()
    expect(page.locator("#compare-chart")).to_have_attribute("data-series", "2")
    expect(page.locator("#compare-summary")).to_have_text("2 runs selected.")
    page.click("#compare-clear")
    expect(page.locator("#compare-chart")).to_have_attribute("data-series", "0")

    # The text filter.
    page.fill("#runs-filter", "alpha")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-experiment-id", str(alpha))
    expect(page.locator("#runs-count")).to_have_text("(1 of 2)")


@pytest.mark.browser
def test_run_detail_shows_test_results_and_predicts(celery_worker, tuner, live_url):
    page = tuner.page
    alpha, _ = finished_runs(tuner)
    run = Experiment.objects.get(pk=alpha)

    page.goto(f"/runs/{alpha}/")
    expect(page.locator("#detail-status")).to_have_text("succeeded")
    expect(page.locator("#detail-name")).to_have_text("alpha")
    expect(page.locator("#detail-loss-chart")).to_have_attribute("data-points", "4")
    expect(page.locator("#detail-accuracy-chart")).to_have_attribute("data-points", "4")
    expect(page.locator("#run-config tr[data-field='epochs'] td")).to_have_text("4")
    expect(page.locator("#run-config tr[data-field='hidden_layers'] td")).to_have_text("[32]")
    expect(page.locator("#run-config tr[data-field='train_size'] td")).to_have_text("1000")

    # Test results.
    total = sum(sum(row) for row in run.confusion_matrix)
    expect(page.locator("#confusion-matrix")).to_have_attribute("data-total", str(total))
    expect(page.locator("#confusion-matrix tbody tr")).to_have_count(10)
    expect(page.locator("#per-class .per-class-row")).to_have_count(10)
    expect(page.locator("#fact-test")).to_have_text(f"{run.test_accuracy * 100:.1f}%")

    # Misclassified test images: an image and "true → predicted" each.
    items = page.locator("#misclassified .misclassified-item")
    expect(items.first).to_be_visible()
    assert 0 < items.count() <= 24
    expect(items.first.locator("canvas")).to_have_count(1)
    expect(items.first.locator(".caption")).to_have_text(re.compile(r"^.+ → .+ \(\d+%\)$"))

    # First-layer filters: one canvas per hidden unit (32).
    expect(page.locator("#filters canvas.filter")).to_have_count(32)

    # Downloads.
    csv_href = page.locator("a#download-csv").get_attribute("href")
    response = page.request.get(csv_href)
    assert response.status == 200
    header, *epochs = response.text().strip().splitlines()
    assert header.startswith("epoch,") and len(epochs) == 4
    expect(page.locator("a#download-weights")).to_have_attribute("href", f"/api/experiments/{alpha}/weights/")
    assert page.request.get(f"/api/experiments/{alpha}/weights/").status == 200

    # Recommendations use the shared markup here too.
    expect(page.locator("#recommendations .recommendation").first).to_be_visible()

    # Try the model: a random test image, then Predict.
    page.click("#predict-random")
    probabilities = page.locator("#predict-result .probability")
    expect(probabilities).to_have_count(10)
    expect(page.locator("#predict-source")).to_contain_text("Test image #")
    page.click("#predict-submit")
    expect(probabilities).to_have_count(10)
    values = probabilities.evaluate_all("rows => rows.map((row) => Number(row.dataset.value))")
    assert sum(values) == pytest.approx(1.0, abs=1e-3)
    assert sorted(int(c) for c in probabilities.evaluate_all("rows => rows.map((r) => r.dataset.class)")) == list(
        range(10))

    # Drawing with the mouse, then Clear.
    page.uncheck("#predict-live")
    box = page.locator("#predict-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.8, steps=12)
    page.mouse.up()
    expect(page.locator("#predict-source")).to_have_text("Your drawing.")
    page.click("#predict-submit")
    expect(probabilities).to_have_count(10)
    page.click("#predict-clear")
    expect(probabilities).to_have_count(0)


@pytest.mark.browser
def test_apply_and_run_on_the_run_detail_page_opens_the_child_run(celery_worker, tuner):
    page = tuner.page
    alpha, _ = finished_runs(tuner)
    page.goto(f"/runs/{alpha}/")
    advice = page.locator("#recommendations .recommendation:has(button.apply-run:enabled)").first
    expect(advice).to_be_visible()
    field = advice.locator(".recommendation-change").first.get_attribute("data-field")

    advice.locator("button.apply-run").click()

    expect(page).not_to_have_url(re.compile(rf"/runs/{alpha}/$"))
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    child_id = int(re.search(r"/runs/(\d+)/$", page.url).group(1))
    expect(page.locator("#detail-lineage")).to_contain_text(f"← #{alpha}")
    expect(page.locator(f"#run-config tr[data-field='{field}']")).to_have_class(re.compile(r"\bchanged\b"))
    expect(page.locator("#detail-status")).to_have_text(re.compile(r"^(succeeded|failed|diverged)$"), timeout=60_000)
    assert Experiment.objects.get(pk=child_id).parent_id == alpha


@pytest.mark.browser
def test_open_in_tuner_loads_the_run_configuration_with_the_changes(celery_worker, tuner, live_url):
    page = tuner.page
    alpha, _ = finished_runs(tuner)
    page.goto(f"/runs/{alpha}/")
    expect(page.locator("#open-in-tuner")).to_have_attribute("href", re.compile(r"^/\?config="))
    advice = page.locator("#recommendations .recommendation:has(button.quick-apply:enabled)").first
    expect(advice.locator("button.quick-apply")).to_have_text("Open in tuner")
    changes = advice.locator(".recommendation-change").evaluate_all(
        "items => items.map((item) => [item.dataset.field, item.textContent])")

    advice.locator("button.quick-apply").click()

    Tuner(page).wait_ready()
    expect(page.locator("#apply-status")).to_contain_text("Loaded the configuration from the run page")
    expect(page).to_have_url(f"{live_url}/")  # the link's ?config= is consumed
    run = Experiment.objects.get(pk=alpha)
    changed = {field for field, _ in changes}
    # The run's own values where the advice changes nothing...
    for field in ("train_size", "epochs", "learning_rate"):
        if field not in changed:
            expect(Tuner(page).number(field)).to_have_value(str(run.config[field]))
    # ... and the advice's values where it does.
    for field, text in changes:
        new = text.split("→")[-1].strip()
        if field == "hidden_layers":
            sizes = page.locator("#hidden-layers .hidden-layer-size").evaluate_all("boxes => boxes.map((b) => b.value)")
            assert f"[{', '.join(sizes)}]" == new
        else:
            expect(Tuner(page).number(field)).to_have_value(new)
