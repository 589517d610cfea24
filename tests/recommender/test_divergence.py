"""Specification of rules/divergence.py: a diverged run gets a 10x lower rate (and clipping for fast SGD)."""

from __future__ import annotations

import pytest

from experiments.recommender import RunSummary, analyze
from tests.recommender.synthetic_runs import config, make_run, of_kind, one, problems


def test_divergence_from_status_cites_losses_and_clips_fast_sgd():
    run = make_run(train_loss=[0.6, 0.5, 12.0], val_loss=[0.5, 0.45, 15.0], train_acc=[0.8, 0.83, 0.1],
                   val_acc=[0.82, 0.84, 0.1], grad=[2.0, 1.0, 80.0], status="diverged",
                   message="epoch 3 mean training loss 12 exceeds 9.21 (4x the loss of uniform guessing)",
                   optimizer="sgd", learning_rate=0.5)
    analysis = analyze(run)
    advice = one(analysis, "divergence")
    assert advice.priority == "critical"
    assert analysis.recommendations[0] is advice
    # lr / 10, and the 90th percentile of the healthy epochs' gradient norms (2.0, 1.0) -> 1.9
    assert advice.changes == {"learning_rate": 0.05, "gradient_clip": 1.9}
    for text in ("12.0 (epoch 3)", "0.500 (epoch 2)", "0.5 -> 0.05", "1.9", "exceeds 9.21"):
        assert text in advice.rationale
    assert analysis.category == "failed"
    # The other curve diagnoses are moot; sgd at 0.5 is just above its stable range, so the rate
    # is named as the cause with a milder cut as the alternative.
    assert problems(analysis) == {"divergence", "lr_too_high"}
    alternative = one(analysis, "lr_too_high")
    assert analysis.recommendations.index(alternative) == 1 and alternative.priority == "high"
    assert alternative.changes == {"learning_rate": pytest.approx(0.5 / 3, rel=1e-2)}


@pytest.mark.parametrize(("optimizer", "rate", "named"), [
    ("sgd", 0.5, True), ("sgd", 1.49, True), ("sgd", 1.5, False), ("sgd", 5.0, False),
    ("momentum", 0.2, True), ("momentum", 0.09, False), ("adam", 0.02, True), ("adam", 0.03, False)])
def test_a_divergence_names_the_rate_only_just_above_the_optimizers_stable_range(optimizer, rate, named):
    run = RunSummary(config=config(optimizer=optimizer, learning_rate=rate), status="diverged", epochs=[],
                     message="training loss became nan at epoch 1, batch 13")
    kinds = analyze(run).kinds()
    assert kinds[0] == "divergence"
    assert ("lr_too_high" in kinds) is named


def test_divergence_without_epochs_uses_the_message_and_adam_gets_no_clip():
    run = RunSummary(config=config(learning_rate=0.05), status="diverged", epochs=[],
                     message="training loss became nan at epoch 1, batch 13")
    analysis = analyze(run)
    advice = one(analysis, "divergence")
    assert advice.changes == {"learning_rate": 0.005}
    assert "nan at epoch 1, batch 13" in advice.rationale and "no epoch completed" in advice.rationale
    assert analysis.kinds() == ["divergence", "performance"]
    assert analysis.category == "failed"
    assert analysis.summary["convergence"] is None


def test_nan_loss_in_epochs_is_divergence():
    run = make_run(train_loss=[0.6, 0.5, float("nan")], val_loss=[0.5, 0.45, float("nan")],
                   train_acc=[0.8, 0.83, 0.1], val_acc=[0.82, 0.84, 0.1], status="diverged",
                   optimizer="momentum", learning_rate=0.05)
    advice = one(analyze(run), "divergence")
    assert "training loss became nan at epoch 3" in advice.rationale
    assert advice.changes == {"learning_rate": 0.005}  # momentum below 0.1: no clipping


def test_exploding_loss_on_a_finished_run_is_divergence():
    # adam at 0.03: the loss climbs from 0.766 back to 1.3 (1.7x its minimum, above 1.15)
    losses = [1.19, 0.766, 0.833, 0.89, 1.16, 1.12, 1.27, 1.30]
    run = make_run(train_loss=losses, val_loss=[0.59, 0.65, 0.66, 0.86, 0.83, 1.10, 0.95, 1.04],
                   train_acc=[0.68, 0.74, 0.73, 0.71, 0.62, 0.63, 0.55, 0.54],
                   val_acc=[0.80, 0.79, 0.79, 0.73, 0.74, 0.59, 0.65, 0.60], learning_rate=0.03, epochs=8)
    analysis = analyze(run)
    advice = one(analysis, "divergence")
    assert advice.priority == "critical"
    assert advice.changes == {"learning_rate": 0.003}
    assert "1.30 at epoch 8" in advice.rationale and "1.7x its minimum of 0.766 at epoch 2" in advice.rationale


@pytest.mark.parametrize("final", [1.14, 0.766 * 1.49])
def test_no_divergence_just_under_the_explosion_thresholds(final):
    # 1.14 is >= 1.5x the minimum but below 1.15; 1.49x is above 1.15 but under 1.5x
    low = 0.76 if final == 1.14 else 0.766
    losses = [1.19, low, 0.8, 0.9, 1.0, final]
    run = make_run(train_loss=losses, val_loss=[0.6] * 6, train_acc=[0.7] * 6, val_acc=[0.75] * 6,
                   epochs=6)
    assert not of_kind(analyze(run), "divergence")


def test_collapse_to_guessing_is_divergence():
    run = make_run(train_loss=[2.10, 2.31, 2.36, 2.31, 2.307, 2.307], val_loss=[2.30] * 6,
                   train_acc=[0.25, 0.10, 0.10, 0.10, 0.10, 0.10], val_acc=[0.10] * 6,
                   grad=[1.4, 0.12, 0.66, 0.19, 0.1, 0.09], optimizer="momentum", learning_rate=0.2, epochs=6)
    advice = one(analyze(run), "divergence")
    assert "collapsed to guessing" in advice.rationale and "10.0%" in advice.rationale
    assert advice.changes == {"learning_rate": 0.02, "gradient_clip": 1.4}  # only epoch 1 was healthy
