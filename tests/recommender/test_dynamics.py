"""Specification of rules/dynamics.py: early instability, still improving, plateau/noise, dead units."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.recommender import analyze
from tests.recommender.synthetic_runs import (
    healthy_converged,
    make_run,
    of_kind,
    one,
    problems,
    still_improving,
)

# --- instability ----------------------------------------------------------------------------------


def test_early_loss_spike_gets_warmup_and_clipping_before_a_lower_rate():
    losses = [0.60, 0.45, 0.55, 0.40, 0.38, 0.36, 0.35, 0.34, 0.33, 0.32]
    grad = [2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    run = make_run(train_loss=losses, val_loss=[0.5, 0.42, 0.44, 0.40, 0.39, 0.38, 0.37, 0.36, 0.355, 0.35],
                   train_acc=[0.80, 0.84, 0.82, 0.86, 0.87, 0.875, 0.88, 0.885, 0.89, 0.895],
                   val_acc=[0.82, 0.85, 0.84, 0.86, 0.865, 0.87, 0.872, 0.874, 0.875, 0.876],
                   grad=grad, epochs=20)
    analysis = analyze(run)
    advice = one(analysis, "instability")
    assert advice.priority == "high"
    # 90th percentile of the mean norms [2, 1 x 9] = 1.1
    assert advice.changes == {"warmup_epochs": 3, "gradient_clip": 1.1}
    assert "jumped 22% from 0.450 (epoch 2) to 0.550 (epoch 3)" in advice.rationale
    assert "Tuning Playbook" in advice.rationale
    lower = one(analysis, "lr_too_high")
    assert lower.priority == "medium" and lower.changes == {"learning_rate": 0.000333}
    kinds = analysis.kinds()
    assert kinds.index("instability") < kinds.index("lr_too_high")


def test_gradient_spike_ratio_is_instability_and_short_runs_get_two_warmup_epochs():
    grad = [2.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # 90th percentile: 1.5
    grad_max = [9.0, 8.0, 2.0, 2.0, 2.0, 2.0]  # epoch 1 is naturally high; epoch 2 is a spike (8x)
    curves = healthy_converged(6)
    advice = one(analyze(make_run(**curves, grad=grad, grad_max=grad_max, epochs=6)), "instability")
    assert advice.changes == {"warmup_epochs": 2, "gradient_clip": 1.5}
    assert "epoch 2 the largest batch gradient norm was 8.0x the epoch mean" in advice.rationale


def test_first_epoch_blow_up_is_instability():
    curves = healthy_converged(10)
    curves["train_loss"][0] = 4.95  # epoch 1 far above guessing (2.30), recovered in epoch 2
    advice = one(analyze(make_run(**curves, learning_rate=0.03, epochs=10)), "instability")
    assert advice.changes["warmup_epochs"] == 2
    assert "mean training loss of epoch 1 was 4.95, above 3.45" in advice.rationale
    curves["train_loss"][0] = 3.40
    assert not of_kind(analyze(make_run(**curves, epochs=10)), "instability")


@pytest.mark.parametrize("ratio, fires", [(15.1, True), (14.9, False)])
def test_first_epoch_gradient_spike_needs_a_higher_ratio(ratio, fires):
    grad_max = [ratio] + [2.0] * 5
    run = make_run(**healthy_converged(6), grad=[1.0] * 6, grad_max=grad_max, epochs=6)
    assert bool(of_kind(analyze(run), "instability")) == fires


@pytest.mark.parametrize("train_loss, grad_max, clip", [
    ([0.60, 0.45, 0.49, 0.40, 0.38, 0.36], None, 0.0),  # +8.9 % loss rise: under 10 %
    (None, [9.0, 5.9, 2.0, 2.0, 2.0, 2.0], 0.0),  # ratio 5.9: under 6
    (None, [9.0, 2.0, 2.0, 2.0, 2.0, 2.0], 0.0),  # only epoch 1 (large initial gradients)
    (None, [9.0, 8.0, 2.0, 2.0, 2.0, 2.0], 5.0),  # spike already clipped
])
def test_no_instability_under_thresholds(train_loss, grad_max, clip):
    curves = healthy_converged(6)
    if train_loss is not None:
        curves["train_loss"] = train_loss
    run = make_run(**curves, grad=[1.0] * 6, grad_max=grad_max, gradient_clip=clip, epochs=6)
    assert not of_kind(analyze(run), "instability")


@pytest.mark.parametrize("optimizer, learning_rate, instability_priority", [
    ("adam", 0.005, "high"),    # usual range: warm-up and clipping first (the Playbook's order)
    ("adam", 0.03, "medium"),   # 3x the high value for Adam: the rate itself is the problem
])
def test_a_far_too_high_rate_outranks_warm_up_and_clipping(optimizer, learning_rate, instability_priority):
    curves = healthy_converged(10)
    curves["train_loss"][0] = 4.95
    run = make_run(**curves, optimizer=optimizer, learning_rate=learning_rate, epochs=10)
    advice = one(analyze(run), "instability")
    assert advice.priority == instability_priority


# --- still improving ------------------------------------------------------------------------------


def test_healthy_still_improving_run_gets_only_more_epochs():
    analysis = analyze(make_run(**still_improving(), epochs=15, test_accuracy=0.883))
    assert set(analysis.kinds()) == {"more_epochs", "performance"}
    advice = one(analysis, "more_epochs")
    assert advice.priority == "medium"
    assert advice.changes == {"epochs": 25}
    expected = advice.evidence["expected_gain_points"]
    assert 0 < expected < 5
    assert f"expected +{expected:.1f} points over 10 more epochs" in advice.rationale
    assert "extrapolated from the last 5 epochs" in advice.rationale
    assert "gained 1.0 points over the last 5 epochs" in advice.rationale
    assert analysis.category == "good"


def test_still_improving_excellent_run_gets_more_epochs_and_success_only():
    analysis = analyze(make_run(**still_improving(slope=0.003), epochs=15, lr_schedule="cosine",
                                test_accuracy=0.893))
    assert set(analysis.kinds()) == {"more_epochs", "success", "performance"}
    assert one(analysis, "success").changes == {}  # more_epochs already proposes the longer run


@pytest.mark.parametrize("curves", [
    still_improving(slope=0.001125),  # gained 0.45 points over the last 5 epochs: under 0.5
    healthy_converged(),  # plateaued
])
def test_no_more_epochs_when_not_improving_enough(curves):
    assert not of_kind(analyze(make_run(**curves, epochs=len(curves["val_acc"]))), "more_epochs")


def test_no_more_epochs_when_the_best_epoch_is_not_at_the_end():
    curves = still_improving()
    curves["val_acc"][8] = 0.95  # an early best
    assert not of_kind(analyze(make_run(**curves, epochs=15)), "more_epochs")


def test_more_epochs_ignores_noise_on_a_tiny_validation_set():
    # 1.0 point of gain is within the binomial noise of 100 validation images (3 points)
    assert not of_kind(analyze(make_run(**still_improving(), epochs=15, train_size=1000)), "more_epochs")


# --- plateau --------------------------------------------------------------------------------------


def stalled_curves(n=20, best_epoch=12):
    e = np.arange(1, n + 1)
    val_acc = [0.80 + 0.075 * min(k, best_epoch) / best_epoch - (0.001 if k > best_epoch else 0) for k in e]
    return dict(train_loss=list(0.30 + 0.2 * np.exp(-e / 3)), val_loss=list(0.36 + 0.1 * np.exp(-e / 3)),
                train_acc=list(0.90 - 0.08 * np.exp(-e / 3)), val_acc=val_acc)


def test_plateau_with_constant_rate_suggests_decay():
    analysis = analyze(make_run(**stalled_curves(), test_accuracy=0.87))
    advice = one(analysis, "plateau")
    assert advice.priority == "medium"
    assert advice.changes == {"lr_schedule": "cosine"}
    assert "No better validation accuracy for 8 epochs (best 87.5% at epoch 12" in advice.rationale
    assert problems(analysis) == {"plateau"}


def test_noisy_late_curve_with_decay_doubles_the_batch_and_sgd_switches():
    curves = healthy_converged(12)
    curves["val_acc"][-5:] = [0.880, 0.892, 0.878, 0.893, 0.879]
    analysis = analyze(make_run(**curves, lr_schedule="cosine", optimizer="sgd", learning_rate=0.05,
                                momentum=0.0, epochs=12))
    main, alternative = of_kind(analysis, "plateau")
    assert main.priority == "medium" and main.changes == {"batch_size": 256}
    assert "scatters" in main.rationale and "6,000 validation images" in main.rationale
    assert alternative.priority == "low"
    assert alternative.changes == {"optimizer": "momentum", "momentum": 0.9, "learning_rate": 0.005}


@pytest.mark.parametrize("kwargs", [
    dict(best_epoch=16),  # 4 epochs without a new best: under 5
])
def test_no_plateau_under_patience(kwargs):
    assert not of_kind(analyze(make_run(**stalled_curves(**kwargs), test_accuracy=0.87)), "plateau")


def test_no_plateau_with_a_decaying_schedule_or_small_noise():
    assert not of_kind(analyze(make_run(**stalled_curves(), lr_schedule="cosine", test_accuracy=0.87)), "plateau")
    curves = healthy_converged(12)
    curves["val_acc"][-5:] = [0.885, 0.891, 0.884, 0.890, 0.885]  # scatter ~0.4 points: under 0.5
    assert not of_kind(analyze(make_run(**curves, lr_schedule="cosine", epochs=12)), "plateau")
    # a curve that only rises (even unevenly, early in training) is not noisy
    curves["val_acc"][-5:] = [0.41, 0.43, 0.44, 0.48, 0.55]
    assert not of_kind(analyze(make_run(**curves, lr_schedule="cosine", epochs=12)), "plateau")
    # a 1-point scatter is normal on 100 validation images
    curves["val_acc"][-5:] = [0.880, 0.892, 0.878, 0.893, 0.879]
    assert not of_kind(analyze(make_run(**curves, lr_schedule="cosine", train_size=1000, epochs=12)), "plateau")


# --- dead units -----------------------------------------------------------------------------------


def test_many_dead_relu_units():
    curves = healthy_converged(10)
    dead = [0.05, 0.08, 0.12, 0.15, 0.2, 0.24, 0.28, 0.31, 0.33, 0.35]
    advice = one(analyze(make_run(**curves, dead=dead, epochs=10)), "dead_units")
    assert advice.priority == "medium"
    assert advice.changes == {"activation": "leaky_relu", "learning_rate": 0.000333}
    assert "35% of the hidden ReLU units" in advice.rationale and "up from 5% at epoch 1" in advice.rationale
    assert "He initialisation" in advice.rationale
    dead[-1] = 0.55
    assert one(analyze(make_run(**curves, dead=dead, epochs=10)), "dead_units").priority == "high"


def test_saturated_tanh_units_lower_the_rate():
    advice = one(analyze(make_run(**healthy_converged(10), dead=[0.4] * 10, activation="tanh", epochs=10)),
                 "dead_units")
    assert advice.changes == {"learning_rate": 0.000333}
    assert "40% of the hidden tanh units are saturated" in advice.rationale


def test_no_dead_units_alarm_at_the_threshold():
    assert not of_kind(analyze(make_run(**healthy_converged(10), dead=[0.30] * 10, epochs=10)), "dead_units")
