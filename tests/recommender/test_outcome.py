"""Specification of rules/outcome.py: the rating, the performance summary, and success advice."""

from __future__ import annotations

import pytest

from experiments.recommender import analyze
from tests.recommender.synthetic_runs import config, healthy_converged, make_run, one, problems
from training.config import TrainingConfig


@pytest.mark.parametrize("test_accuracy, category", [
    (0.89, "excellent"), (0.8899, "good"), (0.86, "good"), (0.8599, "fair"), (0.80, "fair"), (0.7999, "poor"),
])
def test_categories(test_accuracy, category):
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=test_accuracy, lr_schedule="cosine"))
    assert analysis.category == category
    performance = one(analysis, "performance")
    assert performance.priority == "low" and performance.changes == {}
    assert f"{100 * test_accuracy:.1f}%" in performance.title


def test_category_uses_best_validation_accuracy_without_a_test_accuracy():
    assert analyze(make_run(**healthy_converged(), lr_schedule="cosine")).category == "excellent"  # 89.5 %


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
