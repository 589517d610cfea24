"""Specification of rules/outcome.py: the rating, the performance summary, and success advice."""

from __future__ import annotations

import pytest

from experiments.recommender import analyze
from experiments.recommender.reference import (
    EXCELLENT_MARGIN,
    FAIR_MARGIN,
    GOOD_MARGIN,
    bands,
    reference_accuracy,
)
from tests.recommender.synthetic_runs import config, healthy_converged, make_run, one, problems
from training.config import TrainingConfig

# A full-data run of 20 epochs (the synthetic runs' default): a sound MLP reaches 89.7 % test accuracy there.
FULL_20 = reference_accuracy(54000, 20)


@pytest.mark.parametrize("below, category", [
    (-0.01, "excellent"), (0.0, "excellent"), (EXCELLENT_MARGIN, "excellent"), (EXCELLENT_MARGIN + 0.0001, "good"),
    (GOOD_MARGIN, "good"), (GOOD_MARGIN + 0.0001, "fair"), (FAIR_MARGIN, "fair"), (FAIR_MARGIN + 0.0001, "poor"),
])
def test_categories_are_relative_to_the_reference(below, category):
    test_accuracy = round(FULL_20 - below, 6)
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=test_accuracy, lr_schedule="cosine"))
    assert analysis.category == category
    performance = one(analysis, "performance")
    assert performance.priority == "low" and performance.changes == {}
    assert f"{100 * test_accuracy:.1f}%" in performance.title
    assert "a sound MLP reaches 89.7% test accuracy on 54,000 training images in 20 epochs" in performance.rationale


def test_a_quick_subset_run_at_its_reference_is_not_poor():
    reached = reference_accuracy(1800, 10)  # 80.2 %: what 2 000 images (1 800 trained on) give in 10 epochs
    run = make_run(**healthy_converged(10), test_accuracy=reached - 0.001, train_size=2000, epochs=10,
                   lr_schedule="cosine")
    analysis = analyze(run)
    assert analysis.category == "excellent"  # 80.1 % read "fair" on the old absolute scale, 2 000 images "poor"
    evidence = one(analysis, "performance").evidence
    assert evidence["reference_accuracy"] == pytest.approx(reached)
    assert (evidence["train_images"], evidence["epochs"], evidence["reference_metric"]) == (1800, 10, "test")
    margins = bands(1800, 10)  # seed spread there 0.61 points: the bands widen by 0.11
    assert evidence["thresholds"]["excellent_accuracy"] == pytest.approx(reached - margins["excellent"])
    assert evidence["thresholds"]["fair_margin"] == pytest.approx(margins["fair"])


def test_the_rationale_cites_the_reference_and_the_band():
    reached = reference_accuracy(1800, 10)
    run = make_run(**healthy_converged(10), test_accuracy=reached - 0.04, train_size=2000, epochs=10)
    analysis = analyze(run)
    assert analysis.category == "fair"
    rationale = one(analysis, "performance").rationale
    assert (f"a sound MLP reaches {100 * reached:.1f}% test accuracy on 1,800 training images "
            f"(train_size 2,000) in 10 epochs; this run reached {100 * (reached - 0.04):.1f}% test accuracy "
            f"(4.0 points below it): fair, within 6.1 points") in rationale


def test_a_full_data_run_at_80_percent_is_poor():
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=0.80, epochs=20))
    assert analysis.category == "poor"
    assert "more than 6.0 points below" in one(analysis, "performance").rationale


def test_the_same_accuracy_rates_by_data_and_epochs():
    def category(**overrides):
        return analyze(make_run(**healthy_converged(), test_accuracy=0.85, **overrides)).category
    assert category(train_size=5000, epochs=20) == "excellent"  # 4 500 images: 84.9 % in 20 epochs
    assert category(train_size=20000, epochs=3) == "excellent"  # 18 000 images, 3 epochs: 84.6 %
    assert category(epochs=30) == "fair"  # all the data, 30 epochs: 89.9 %, so 4.9 points below
    assert category(epochs=2) == "good"  # all the data, 2 epochs: 86.3 %
    assert category(train_size=1000, epochs=30) == "excellent"  # far above the 79.8 % of 900 images


def test_noisy_points_widen_every_band_by_the_measured_seed_spread():
    # one epoch on 900 images: seeds of the default config scatter 3.0 points (TEST_SPREAD)
    reached = reference_accuracy(900, 1)
    run = make_run(**healthy_converged(1), test_accuracy=reached - 0.02, train_size=1000, epochs=1)
    analysis = analyze(run)
    assert analysis.category == "excellent"
    assert "widened by 2.5 points of measured seed-to-seed spread" in one(analysis, "performance").rationale


def test_runs_without_a_test_accuracy_are_rated_on_the_best_validation_reference():
    best_val = reference_accuracy(54000, 20, metric="best_val")  # 90.5 %: higher than the test reference
    analysis = analyze(make_run(**healthy_converged(), best_val_accuracy=best_val, lr_schedule="cosine"))
    assert analysis.category == "excellent"
    evidence = one(analysis, "performance").evidence
    assert evidence["reference_metric"] == "best_val"
    assert "best validation accuracy on 54,000 training images" in one(analysis, "performance").rationale


def test_a_cancelled_run_is_judged_by_the_epochs_it_ran():
    curves = healthy_converged(5)
    run = make_run(**curves, status="cancelled", train_size=10000, epochs=30)
    analysis = analyze(run)
    evidence = one(analysis, "performance").evidence
    assert evidence["epochs"] == 5 and evidence["train_images"] == 9000
    assert evidence["reference_accuracy"] == pytest.approx(reference_accuracy(9000, 5, metric="best_val"))


def test_failed_and_diverged_runs_are_failed_whatever_the_reference():
    for status in ("failed", "diverged"):
        analysis = analyze(make_run(**healthy_converged(), status=status, test_accuracy=0.95))
        assert analysis.category == "failed"
        assert "reference_accuracy" in one(analysis, "performance").evidence


def test_healthy_converged_excellent_run_gets_success_and_no_problem():
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=0.893, lr_schedule="cosine"))
    assert problems(analysis) == set()
    assert set(analysis.kinds()) == {"success", "performance"}
    advice = one(analysis, "success")
    assert advice.priority == "low" and "Excellent" in advice.title and "89.3%" in advice.title
    assert advice.changes == {"epochs": 30}
    sweep = advice.evidence["sweep_suggestion"]
    assert sweep["learning_rate"] == [0.0005, 0.001, 0.002]
    for name, values in sweep.items():
        for value in values:
            TrainingConfig.from_dict({**config(lr_schedule="cosine"), name: value})


def test_success_of_a_constant_rate_run_suggests_cosine():
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=0.893))
    assert problems(analysis) == set()  # the stall of a converged excellent run is no plateau alarm
    assert one(analysis, "success").changes == {"epochs": 30, "lr_schedule": "cosine"}


def test_success_of_an_excellent_subset_run_also_offers_more_data():
    reached = reference_accuracy(1800, 20)
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=reached, train_size=2000, lr_schedule="cosine"))
    assert analysis.category == "excellent"
    advice = one(analysis, "success")
    assert advice.changes == {"epochs": 30, "train_size": 8000}
    more = reference_accuracy(7200, 30)
    assert (f"more data and epochs (8,000 images instead of 2,000, 30 epochs instead of 20), where a sound MLP "
            f"reaches {100 * more:.1f}%") in advice.rationale
    assert advice.evidence["train_images"] == 1800 and advice.evidence["epochs"] == 20


def test_success_of_a_large_subset_goes_to_all_the_data():
    reached = reference_accuracy(18000, 20)
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=reached, train_size=20000, lr_schedule="cosine"))
    assert one(analysis, "success").changes == {"epochs": 30, "train_size": None}
    assert "60,000 images instead of 20,000" in one(analysis, "success").rationale
