"""The recommender's diagnoses on synthetic training curves (pure Python: no database).

Every diagnosis has a clear positive case (kind, priority, the numbers in the rationale,
the exact changes) and borderline negatives just under its thresholds. Runs with
`-p no:django` too.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.recommender import THRESHOLDS, Advice, Analysis, RunSummary, analyze
from experiments.recommender.analysis import _valid_changes
from experiments.recommender.base import INFO_KINDS, PRIORITY_RANK, PROBLEM_KINDS
from training.config import FIELDS, ConfigError, TrainingConfig


@pytest.fixture(autouse=True)
def fresh_event_counters():
    """Overrides tests/conftest.py's autouse fixture of the same name (Django settings + Redis):
    these tests are pure Python and must run without Django (`-p no:django`) or a Redis server."""
    yield


# --- helpers -------------------------------------------------------------------------------------------

BASE = {"hidden_layers": [256, 128], "optimizer": "adam", "learning_rate": 0.001, "epochs": 20,
        "dropout": 0.2, "lr_schedule": "constant"}


def config(**overrides) -> dict:
    return TrainingConfig.from_dict({**BASE, **overrides}).to_dict()


def make_run(train_loss, val_loss, train_acc, val_acc, *, grad=None, grad_max=None, dead=None,
             status="succeeded", test_accuracy=None, best_val_accuracy=None, best_epoch=None,
             message="", run_id=None, **config_overrides) -> RunSummary:
    n = len(train_loss)
    assert len(val_loss) == len(train_acc) == len(val_acc) == n
    grad = [1.0] * n if grad is None else grad
    grad_max = [2.0 * g for g in grad] if grad_max is None else grad_max
    dead = [0.01] * n if dead is None else dead
    cfg = config(**config_overrides)
    epochs = [
        {"epoch": i + 1, "train_loss": train_loss[i], "train_accuracy": train_acc[i],
         "val_loss": val_loss[i], "val_accuracy": val_acc[i], "learning_rate": cfg["learning_rate"],
         "seconds": 1.0, "samples_per_second": 50_000.0, "gradient_norm": grad[i],
         "gradient_norm_max": grad_max[i], "dead_unit_fraction": dead[i]}
        for i in range(n)
    ]
    return RunSummary(config=cfg, status=status, epochs=epochs, best_val_accuracy=best_val_accuracy,
                      best_epoch=best_epoch, test_accuracy=test_accuracy, message=message, run_id=run_id)


def of_kind(analysis: Analysis, kind: str) -> list[Advice]:
    return [a for a in analysis.recommendations if a.kind == kind]


def one(analysis: Analysis, kind: str) -> Advice:
    found = of_kind(analysis, kind)
    assert found, f"no {kind!r} advice in {analysis.kinds()}"
    return found[0]


def problems(analysis: Analysis) -> set[str]:
    return {a.kind for a in analysis.recommendations} & PROBLEM_KINDS


def healthy_converged(n=20):
    """Smooth, converged curves of a good run: losses flatten, val accuracy saturates at 89.5%."""
    e = np.arange(n)
    return dict(train_loss=list(0.22 + 0.35 * np.exp(-e / 4)), val_loss=list(0.295 + 0.13 * np.exp(-e / 3)),
                train_acc=list(0.92 - 0.12 * np.exp(-e / 4)), val_acc=list(0.895 - 0.045 * np.exp(-e / 3)))


def still_improving(n=15, slope=0.0025):
    """Healthy run whose val accuracy still rises `slope` per epoch at the end."""
    e = np.arange(1, n + 1)
    return dict(train_loss=list(0.45 - 0.015 * e), val_loss=list(0.40 - 0.005 * e),
                train_acc=list(0.86 + 0.004 * e), val_acc=list(0.85 + slope * e))


def overfit_curves(n=20, rise_per_epoch=0.004, final_gap=0.07):
    """Val loss minimal at epoch 6 then rising; train loss keeps falling; gap grows to `final_gap`."""
    e = np.arange(1, n + 1)
    train_loss = list(0.45 * 0.9 ** (e - 1))
    val_loss = [0.45, 0.40, 0.36, 0.34, 0.33, 0.32] + [0.32 + (k - 6) * rise_per_epoch for k in range(7, n + 1)]
    val_acc = [0.85, 0.86, 0.87, 0.875, 0.88, 0.885] + [0.884] * (n - 6)
    # train accuracy rises linearly to val_acc[-1] + final_gap
    start, end = 0.84, val_acc[-1] + final_gap
    train_acc = list(start + (end - start) * (e - 1) / (n - 1))
    return dict(train_loss=train_loss, val_loss=val_loss, train_acc=train_acc, val_acc=val_acc)


# --- the API shape -----------------------------------------------------------------------------------


def test_thresholds_are_named_numbers():
    assert THRESHOLDS["chance_accuracy"] == 0.10
    assert THRESHOLDS["divergence_loss"] == pytest.approx(4 * math.log(10))
    for name, value in THRESHOLDS.items():
        assert isinstance(name, str)
        assert isinstance(value, (int, float, dict)), name


def test_recommendations_are_ordered_and_serialisable():
    run = make_run(**overfit_curves(), dropout=0.0, test_accuracy=0.875)
    analysis = analyze(run)
    ranks = [(PRIORITY_RANK[a.priority], -a.confidence) for a in analysis.recommendations]
    assert ranks == sorted(ranks)
    json.dumps(analysis.summary, allow_nan=False)
    for advice in analysis.recommendations:
        json.dumps(advice.evidence, allow_nan=False)
        assert 0.0 <= advice.confidence <= 1.0
        assert advice.title and "\n" not in advice.title


# --- divergence ------------------------------------------------------------------------------------------


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
    assert problems(analysis) == {"divergence"}  # the other curve diagnoses are moot


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


# --- learning rate too high ------------------------------------------------------------------------------

OSCILLATING = [0.69, 0.51, 0.50, 0.49, 0.50, 0.49, 0.485, 0.48, 0.50, 0.48, 0.47, 0.49, 0.47, 0.47, 0.46]


def flat_curves(train_loss, val_acc=0.85, train_acc=0.845):
    n = len(train_loss)
    return dict(train_loss=train_loss, val_loss=[0.45] * n, train_acc=[train_acc] * n, val_acc=[val_acc] * n)


def test_oscillating_loss_means_lr_too_high():
    analysis = analyze(make_run(**flat_curves(OSCILLATING), learning_rate=0.01, epochs=15))
    advice = one(analysis, "lr_too_high")
    assert advice.priority == "high"
    assert advice.changes == {"learning_rate": 0.00333}
    assert "rose in 3 of 14 epoch-to-epoch steps (21%" in advice.rationale
    assert "+4.2% at epoch 9" in advice.rationale and "0.01 -> 0.00333" in advice.rationale
    assert not of_kind(analysis, "underfitting")  # a noisy optimiser, not a lack of capacity


def test_one_rise_or_small_rises_are_not_oscillation():
    one_rise = [0.69, 0.51, 0.50, 0.49, 0.50, 0.49, 0.485, 0.48, 0.475, 0.47, 0.465, 0.46, 0.455, 0.45, 0.445]
    assert not of_kind(analyze(make_run(**flat_curves(one_rise), epochs=15)), "lr_too_high")
    # rises of 0.9 % (under the 1 % tolerance) in 4 of 14 steps
    small = [0.69, 0.51, 0.50, 0.49, 0.4944, 0.49, 0.485, 0.48, 0.4843, 0.48, 0.475, 0.4792, 0.47, 0.4742, 0.46]
    assert not of_kind(analyze(make_run(**flat_curves(small), epochs=15)), "lr_too_high")


def test_rises_in_the_memorisation_regime_do_not_count():
    # rises of 10-25 % but all below a training loss of 0.25 (the net already fits the training set)
    losses = [0.45, 0.30, 0.24, 0.20, 0.22, 0.18, 0.20, 0.15, 0.17, 0.12, 0.14, 0.10]
    run = make_run(train_loss=losses, val_loss=[0.35] * 12, train_acc=[0.95] * 12, val_acc=[0.89] * 12,
                   epochs=12)
    assert not of_kind(analyze(run), "lr_too_high")


def test_early_validation_loss_rise_means_lr_too_high():
    run = make_run(train_loss=[0.70, 0.55, 0.50, 0.46, 0.44], val_loss=[0.50, 0.56, 0.52, 0.50, 0.48],
                   train_acc=[0.75, 0.80, 0.82, 0.84, 0.85], val_acc=[0.80, 0.79, 0.81, 0.82, 0.83],
                   learning_rate=0.005, epochs=5)
    advice = one(analyze(run), "lr_too_high")
    assert advice.priority == "high"
    assert "validation loss rose 12% from 0.500 at epoch 1 to 0.560 at epoch 2" in advice.rationale
    assert "training loss was still 0.550" in advice.rationale
    assert advice.changes == {"learning_rate": 0.00167}


@pytest.mark.parametrize("val_loss, train_loss", [
    ([0.50, 0.524, 0.52, 0.50, 0.48], [0.70, 0.55, 0.50, 0.46, 0.44]),  # +4.8 %: under 5 %
    ([0.50, 0.56, 0.52, 0.50, 0.48], [0.70, 0.44, 0.42, 0.40, 0.38]),  # train loss already low (0.44)
])
def test_no_early_rise_alarm_under_thresholds(val_loss, train_loss):
    run = make_run(train_loss=train_loss, val_loss=val_loss, train_acc=[0.75, 0.80, 0.82, 0.84, 0.85],
                   val_acc=[0.80, 0.79, 0.81, 0.82, 0.83], epochs=5)
    assert not of_kind(analyze(run), "lr_too_high")


# --- learning rate too low ---------------------------------------------------------------------------------


def test_slow_steady_descent_means_lr_too_low():
    e = np.arange(10)
    run = make_run(train_loss=list(1.6 * 0.93**e), val_loss=list(1.2 * 0.94**e),
                   train_acc=list(0.45 + 0.035 * e), val_acc=list(0.60 + 0.02 * e),
                   optimizer="sgd", learning_rate=0.001, epochs=10)
    analysis = analyze(run)
    advice = one(analysis, "lr_too_low")
    assert advice.priority == "high"
    assert advice.changes == {"learning_rate": 0.003}
    assert "76.5%" in advice.rationale and "0.001 -> 0.003" in advice.rationale
    assert "4,220 optimizer steps" in advice.rationale  # 54 000 images / 128 per batch x 10 epochs
    assert "25.2% over the last 5 epochs" in advice.rationale
    assert not of_kind(analysis, "underfitting")


def test_extremely_flat_loss_raises_lr_tenfold():
    losses = [2.30, 2.295, 2.29, 2.28, 2.27, 2.265, 2.26]
    run = make_run(train_loss=losses, val_loss=[2.29] * 7, train_acc=[0.12, 0.13, 0.14, 0.15, 0.16, 0.16, 0.17],
                   val_acc=[0.15] * 7, optimizer="sgd", learning_rate=1e-5, epochs=7)
    advice = one(analyze(run), "lr_too_low")
    assert advice.changes == {"learning_rate": 1e-4}
    assert "barely moved" in advice.rationale and "1.7% lower" in advice.rationale
    assert "extremely flat" in advice.rationale


def test_no_lr_too_low_under_thresholds():
    e = np.arange(10)
    slow = dict(train_loss=list(1.6 * 0.93**e), val_loss=list(1.2 * 0.94**e), val_acc=list(0.60 + 0.02 * e))
    # train accuracy reaches 80 %: not low
    run = make_run(**slow, train_acc=list(0.485 + 0.035 * e), optimizer="sgd", learning_rate=0.001, epochs=10)
    assert not of_kind(analyze(run), "lr_too_low")
    # the last 5 epochs fell 4.9 % only
    losses = [1.6, 1.3, 1.1, 1.0, 0.95, 0.94 * 1.0, 0.94 * 0.9878, 0.94 * 0.9755, 0.94 * 0.9632, 0.94 * 0.951]
    run = make_run(train_loss=losses, val_loss=[1.0] * 10, train_acc=list(0.45 + 0.035 * e),
                   val_acc=[0.7] * 10, optimizer="sgd", learning_rate=0.001, epochs=10)
    assert not of_kind(analyze(run), "lr_too_low")


def test_a_rate_far_below_the_optimizers_range_is_too_low_even_in_a_short_run():
    # sgd at 1e-4 on 4 800 images: 38 steps per epoch, 304 in all, loss still 2.22 after 8 epochs
    losses = [2.87, 2.74, 2.62, 2.52, 2.43, 2.35, 2.28, 2.22]
    run = make_run(train_loss=losses, val_loss=[x - 0.03 for x in losses],
                   train_acc=[0.08, 0.11, 0.14, 0.16, 0.19, 0.22, 0.24, 0.26],
                   val_acc=[0.09, 0.12, 0.16, 0.19, 0.20, 0.23, 0.25, 0.27], optimizer="sgd", learning_rate=1e-4,
                   train_size=6000, validation_fraction=0.2, epochs=8)
    advice = one(analyze(run), "lr_too_low")
    assert advice.changes == {"learning_rate": 0.001}
    assert "0.0001 is low for sgd" in advice.rationale and "304 optimizer steps" in advice.rationale


def test_few_optimizer_steps_are_a_short_run_not_a_low_rate():
    e = np.arange(10)
    run = make_run(train_loss=list(1.6 * 0.93**e), val_loss=list(1.2 * 0.94**e),
                   train_acc=list(0.45 + 0.035 * e), val_acc=list(0.60 + 0.02 * e),
                   train_size=1000, epochs=10)  # 900 training images / 128 = 8 steps per epoch
    analysis = analyze(run)
    assert not of_kind(analysis, "lr_too_low")
    assert of_kind(analysis, "more_epochs")


# --- overfitting ----------------------------------------------------------------------------------------------


def test_overfitting_regularises_first_and_offers_early_stopping():
    analysis = analyze(make_run(**overfit_curves(), dropout=0.0, test_accuracy=0.875))
    advices = of_kind(analysis, "overfitting")
    main, stop = advices[0], advices[1]
    assert main.priority == "high"
    assert main.changes == {"dropout": 0.2, "l2": 0.0001}
    assert list(main.changes) == ["dropout", "l2"]  # main fix first
    for text in ("rose 0.0560 from its minimum 0.320 at epoch 6", "0.376 at epoch 20", "gap 7.0 points",
                 "training loss kept falling"):
        assert text in main.rationale
    assert stop.priority == "medium"
    assert stop.changes == {"early_stopping_patience": 3}
    assert "peaked at 88.5% at epoch 6" in stop.rationale
    assert main.evidence["val_loss_min_epoch"] == 6
    assert not of_kind(analysis, "plateau")  # a stall caused by overfitting is not a plateau


def test_overfitting_with_l2_and_dropout_already_and_a_large_network():
    analysis = analyze(make_run(**overfit_curves(), dropout=0.5, l2=1e-4, early_stopping_patience=10,
                                hidden_layers=[1024, 1024]))
    main, stop, smaller = of_kind(analysis, "overfitting")
    assert main.changes == {"l2": 0.0003}  # dropout 0.5 is already strong: only l2 x3
    assert stop.changes == {"epochs": 8}  # early stopping already on: best epoch 6 + 2
    assert smaller.priority == "low" and smaller.changes == {"hidden_layers": [512, 512]}


@pytest.mark.parametrize("curves", [
    overfit_curves(final_gap=0.039),  # gap 3.9 points: under 4
    overfit_curves(rise_per_epoch=0.0020),  # val loss rose 0.028: under 0.03
])
def test_no_overfitting_just_under_thresholds(curves):
    assert not of_kind(analyze(make_run(**curves, dropout=0.0)), "overfitting")


# --- underfitting ----------------------------------------------------------------------------------------------


def underfit_curves(final_train_acc=0.841, gain=0.003, gap=0.011, n=15):
    e = np.arange(n)
    train_acc = list(final_train_acc - gain * (n - 1 - e) / 4)  # linear: `gain` over the last 5 epochs
    return dict(train_loss=list(0.46 + 0.1 * np.exp(-e)), val_loss=list(0.48 + 0.1 * np.exp(-e)),
                train_acc=train_acc, val_acc=[a - gap for a in train_acc])


def test_underfitting_tiny_network_widens_it():
    analysis = analyze(make_run(**underfit_curves(), hidden_layers=[32], dropout=0.0, epochs=15))
    advice = one(analysis, "underfitting")
    assert advice.priority == "high"
    assert advice.changes == {"hidden_layers": [128]}
    assert "84.1%" in advice.rationale and "[32] -> [128]" in advice.rationale
    assert "0.3 points over the last 5 epochs" in advice.rationale and "gap of 1.1 points" in advice.rationale


def test_underfitting_ordered_by_impact_with_heavy_dropout_and_low_rate():
    analysis = analyze(make_run(**underfit_curves(final_train_acc=0.70, gap=-0.12), hidden_layers=[16],
                                dropout=0.6, optimizer="sgd", learning_rate=0.005, epochs=15))
    advice = one(analysis, "underfitting")
    assert advice.changes == {"hidden_layers": [128], "dropout": 0.3, "learning_rate": 0.015}
    assert list(advice.changes) == ["hidden_layers", "dropout", "learning_rate"]
    assert "measured with dropout on" in advice.rationale


def test_underfitting_of_an_adequate_network_doubles_it_and_trains_longer():
    advice = one(analyze(make_run(**underfit_curves(), dropout=0.0, lr_schedule="cosine", epochs=15)),
                 "underfitting")
    assert advice.changes == {"hidden_layers": [512, 256], "epochs": 25}


@pytest.mark.parametrize("kwargs, hidden", [
    (dict(final_train_acc=0.871), [32]),  # train accuracy above 87 %
    (dict(gain=0.011), [64]),  # still gaining 1.1 points over the last 5 epochs, no tiny layer
    (dict(gap=0.031), [32]),  # gap 3.1 points: the net memorises instead
])
def test_no_underfitting_under_thresholds(kwargs, hidden):
    run = make_run(**underfit_curves(**kwargs), hidden_layers=hidden, dropout=0.0, epochs=15)
    assert not of_kind(analyze(run), "underfitting")


def test_tiny_network_underfits_even_while_still_improving():
    analysis = analyze(make_run(**underfit_curves(final_train_acc=0.55, gain=0.08, gap=0.0), hidden_layers=[4],
                                dropout=0.0, learning_rate=0.003, epochs=10))
    advice = one(analysis, "underfitting")
    assert advice.changes == {"hidden_layers": [128]}
    assert "still rising (8.0 points over the last 5 epochs)" in advice.rationale
    assert "narrower than 64 units" in advice.rationale


# --- still improving ------------------------------------------------------------------------------------------------


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


# --- instability ------------------------------------------------------------------------------------------------------


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


# --- plateau ------------------------------------------------------------------------------------------------------------


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


# --- dead units ----------------------------------------------------------------------------------------------------------


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


# --- performance, success, edge cases -----------------------------------------------------------------------------


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


def test_summary_numbers():
    analysis = analyze(make_run(**healthy_converged(), test_accuracy=0.893, lr_schedule="cosine"))
    summary = analysis.summary
    assert summary["best_val_accuracy"] == pytest.approx(0.895, abs=1e-3)
    assert summary["test_accuracy"] == 0.893
    assert summary["epochs_to_95pct_best"] == 2  # epoch 1: 85.0 % < 95 % of 89.49 % = 85.02 %
    assert summary["convergence"] == "fast"
    assert summary["generalization_gap"] == pytest.approx(2.4, abs=0.05)  # 91.9 % - 89.5 %
    assert summary["final_train_accuracy"] == pytest.approx(0.919, abs=1e-3)
    assert "gap 2.4 points" in one(analysis, "performance").rationale


def test_slow_convergence():
    e = np.arange(1, 11)
    run = make_run(train_loss=list(1.0 - 0.05 * e), val_loss=list(1.0 - 0.05 * e),
                   train_acc=list(0.30 + 0.05 * e), val_acc=list(0.30 + 0.05 * e), epochs=10)
    assert analyze(run).summary["convergence"] == "slow"  # 95 % of 80 % first at epoch 9 of 10


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


@pytest.mark.parametrize("status, n", [("cancelled", 0), ("cancelled", 1), ("failed", 1), ("succeeded", 0)])
def test_unfinished_or_empty_runs_get_only_the_performance_summary(status, n):
    curves = {k: v[:n] for k, v in overfit_curves().items()}
    analysis = analyze(make_run(**curves, status=status))
    assert analysis.kinds() == ["performance"]


def test_cancelled_run_with_epochs_is_diagnosed_but_not_told_to_train_longer():
    analysis = analyze(make_run(**overfit_curves(), dropout=0.0, status="cancelled"))
    assert of_kind(analysis, "overfitting")
    assert not of_kind(analysis, "more_epochs") and not of_kind(analysis, "success")
    analysis = analyze(make_run(**still_improving(), epochs=15, status="cancelled"))
    assert analysis.kinds() == ["performance"]


def test_no_changes_left_drops_the_advice():
    # lr 1e-4 divided by 3 stays valid; but dropout at its 0.9 maximum cannot grow
    curves = healthy_converged(10)
    analysis = analyze(make_run(**curves, dead=[0.4] * 10, activation="leaky_relu", learning_rate=10.0 ** -9,
                                epochs=10))
    for advice in analysis.recommendations:
        assert advice.changes or advice.kind in INFO_KINDS


def test_odd_input_does_not_crash():
    # a zero minimum loss, missing metric keys, a partial config, NaN gradient norms
    run = make_run(train_loss=[0.0, 0.0, 2.0], val_loss=[0.1, 0.1, 2.0], train_acc=[1.0, 1.0, 0.5],
                   val_acc=[0.9, 0.9, 0.5], grad=[float("nan")] * 3, epochs=3)
    assert one(analyze(run), "divergence").changes == {"learning_rate": 0.0001}
    partial = RunSummary(config={"optimizer": "sgd"}, status="succeeded",
                         epochs=[{"epoch": 2, "train_loss": 0.5}, {"epoch": 1, "val_accuracy": 0.8}])
    analysis = analyze(partial)
    assert analysis.category == "fair" and analysis.summary["best_val_accuracy"] == 0.8


# --- history -------------------------------------------------------------------------------------------------------------


def history_runs():
    accuracies = {1: ("adam", 0.880), 2: ("adam", 0.885), 3: ("adam", 0.893),
                  4: ("sgd", 0.830), 5: ("sgd", 0.840), 6: ("sgd", 0.845)}
    runs = []
    for run_id, (optimizer, accuracy) in accuracies.items():
        lr = 0.001 if optimizer == "adam" else 0.05
        runs.append(RunSummary(config=config(optimizer=optimizer, learning_rate=lr, seed=run_id),
                               status="succeeded", epochs=[], best_val_accuracy=accuracy, run_id=run_id))
    return runs


def test_history_points_to_the_best_run_with_counts():
    run = make_run(**healthy_converged(), optimizer="sgd", learning_rate=0.05, run_id=10,
                   best_val_accuracy=0.84, test_accuracy=0.835)
    advice = one(analyze(run, history_runs()), "history")
    assert "optimizer=adam: 88.6% mean over 3 runs vs sgd: 83.9% over 4 runs" in advice.rationale
    assert "went with" in advice.rationale and "not proven causes" in advice.rationale
    assert "best run is #3 (89.3%" in advice.rationale
    assert advice.evidence["best_run_id"] == 3
    assert advice.changes == {"learning_rate": 0.001, "optimizer": "adam"}  # never the seed
    assert advice.priority == "medium"


def test_history_when_this_run_is_the_best():
    run = make_run(**healthy_converged(), run_id=10, best_val_accuracy=0.90)
    advice = one(analyze(run, history_runs()), "history")
    assert advice.changes == {} and "your best so far" in advice.rationale


def test_history_needs_three_other_finished_runs():
    run = make_run(**healthy_converged(), optimizer="sgd", learning_rate=0.05, run_id=10)
    assert not of_kind(analyze(run, history_runs()[:2]), "history")
    others = history_runs()[:2] + [RunSummary(config=config(), status="cancelled", epochs=[],
                                              best_val_accuracy=0.9, run_id=7)]
    assert not of_kind(analyze(run, others), "history")  # a cancelled run does not count


def test_history_claims_no_direction_on_single_runs():
    runs = history_runs()[2:5]  # adam 0.893, sgd 0.830, sgd 0.840: adam has one run only
    run = make_run(**healthy_converged(), optimizer="sgd", learning_rate=0.05, run_id=10, best_val_accuracy=0.84)
    advice = one(analyze(run, runs), "history")
    assert "no setting stands out" in advice.rationale
    assert advice.priority == "low"


# --- _valid_changes -------------------------------------------------------------------------------------------------------


def test_valid_changes_clamps_drops_no_ops_and_validates():
    cfg = config(warmup_epochs=5)
    assert _valid_changes(cfg, {"dropout": 1.5}) == {"dropout": 0.9}
    assert _valid_changes(cfg, {"dropout": cfg["dropout"], "bogus": 1}) == {}
    assert _valid_changes(cfg, {"learning_rate": 0.0}) == {}
    assert _valid_changes(cfg, {"hidden_layers": [256, 128]}) == {}
    assert _valid_changes(cfg, {"hidden_layers": [4096, 0]}) == {"hidden_layers": [2048, 1]}
    assert _valid_changes(cfg, {"hidden_layers": [1, 2, 3, 4]}) == {}
    assert _valid_changes(cfg, {"epochs": 4, "l2": 1e-4}) == {"l2": 1e-4}  # warm-up 5 needs > 5 epochs
    assert _valid_changes(cfg, {"epochs": 25.4, "activation": "gelu"}) == {"epochs": 25}
    assert _valid_changes(cfg, {"train_size": None}) == {}
    assert _valid_changes(config(train_size=1000), {"train_size": None}) == {"train_size": None}
    assert _valid_changes({**cfg, "unknown": 1}, {"l2": 1e-4}) == {}  # the base itself is invalid


# --- properties -----------------------------------------------------------------------------------------------------------


def _config_strategy():
    def build(draw_values):
        data = dict(draw_values)
        data["warmup_epochs"] = min(data["warmup_epochs"], data["epochs"] - 1)
        return TrainingConfig.from_dict(data).to_dict()

    return st.fixed_dictionaries({
        "hidden_layers": st.lists(st.integers(1, 2048), min_size=1, max_size=3),
        "activation": st.sampled_from(FIELDS["activation"].choices),
        "optimizer": st.sampled_from(FIELDS["optimizer"].choices),
        "learning_rate": st.floats(-6, 1).map(lambda x: float(f"{10**x:.3g}")),
        "momentum": st.floats(0, 0.99),
        "batch_size": st.integers(1, 4096),
        "epochs": st.integers(1, 200),
        "l2": st.sampled_from([0.0, 1e-5, 1e-4, 1e-3, 0.05]),
        "dropout": st.floats(0, 0.9),
        "lr_schedule": st.sampled_from(FIELDS["lr_schedule"].choices),
        "warmup_epochs": st.integers(0, 50),
        "gradient_clip": st.sampled_from([0.0, 0.5, 5.0, 1000.0]),
        "early_stopping_patience": st.integers(0, 20),
        "validation_fraction": st.floats(0.05, 0.5),
        "train_size": st.one_of(st.none(), st.integers(100, 60000)),
        "seed": st.integers(0, 2**31 - 1),
    }).map(build)


def _series(n: int, seed: int, style: str) -> list[dict]:
    """Per-epoch metrics: uniformly random (with NaN/inf), or plausible curves with noise and spikes."""
    rng = np.random.default_rng(seed)
    if style == "random":
        train_loss = rng.uniform(0, 12, n)
        val_loss = rng.uniform(0, 12, n)
        for series in (train_loss, val_loss):
            series[rng.random(n) < 0.05] = rng.choice([np.nan, np.inf])
        train_acc, val_acc = rng.random(n), rng.random(n)
    else:
        e = np.arange(n)
        start, end = rng.uniform(0.3, 2.5), rng.uniform(0.02, 2.5)
        rate = rng.uniform(1, 10)
        train_loss = end + (start - end) * np.exp(-e / rate)
        val_loss = train_loss * rng.uniform(0.9, 1.3) + rng.uniform(0, 0.01) * e ** rng.uniform(0, 2)
        val_acc = np.clip(rng.uniform(0.1, 0.95) - rng.uniform(0, 0.3) * np.exp(-e / rate), 0, 1)
        train_acc = np.clip(val_acc + rng.uniform(-0.1, 0.1) + rng.uniform(0, 0.004) * e, 0, 1)
        if style == "noisy":
            train_loss = train_loss * rng.uniform(0.9, 1.15, n)
            val_acc = np.clip(val_acc + rng.normal(0, 0.01, n), 0, 1)
    grad = rng.uniform(0, 10, n)
    return [{"epoch": i + 1, "train_loss": float(train_loss[i]), "val_loss": float(val_loss[i]),
             "train_accuracy": float(train_acc[i]), "val_accuracy": float(val_acc[i]), "learning_rate": 0.001,
             "seconds": 1.0, "samples_per_second": 1.0, "gradient_norm": float(grad[i]),
             "gradient_norm_max": float(grad[i] * rng.uniform(1, 30)), "dead_unit_fraction": float(rng.random() ** 3)}
            for i in range(n)]


@st.composite
def _runs(draw, max_epochs=30):
    epochs = _series(draw(st.integers(0, max_epochs)), draw(st.integers(0, 2**32 - 1)),
                     draw(st.sampled_from(["random", "smooth", "noisy"])))
    return RunSummary(
        config=draw(_config_strategy()),
        status=draw(st.sampled_from(["succeeded", "failed", "diverged", "cancelled"])), epochs=epochs,
        best_val_accuracy=draw(st.one_of(st.none(), st.floats(0, 1))),
        test_accuracy=draw(st.one_of(st.none(), st.floats(0, 1))),
        run_id=draw(st.one_of(st.none(), st.integers(1, 100))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=_runs(), history=st.lists(_runs(max_epochs=0), max_size=6))  # history reads no curves
def test_every_change_validates_and_is_not_a_no_op(run, history):
    analysis = analyze(run, history)
    assert analysis.category in ("excellent", "good", "fair", "poor", "failed")
    json.dumps(analysis.summary, allow_nan=False)
    ranks = [(PRIORITY_RANK[a.priority], -a.confidence) for a in analysis.recommendations]
    assert ranks == sorted(ranks)
    for advice in analysis.recommendations:
        assert advice.changes or advice.kind in INFO_KINDS
        try:
            TrainingConfig.from_dict({**run.config, **advice.changes})
        except ConfigError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{advice.kind} proposed invalid changes {advice.changes}: {exc}")
        for name, value in advice.changes.items():
            current = run.config[name]
            assert value != current and not (isinstance(current, float) and value == pytest.approx(current)), \
                f"{advice.kind} proposed a no-op {name}={value!r}"
        json.dumps(advice.evidence, allow_nan=False)


_history_config = st.fixed_dictionaries({
    "optimizer": st.sampled_from(["adam", "sgd", "momentum"]),
    "learning_rate": st.sampled_from([0.001, 0.01, 0.05]),
    "hidden_layers": st.sampled_from([[256, 128], [64], [512, 256, 128]]),
    "dropout": st.sampled_from([0.0, 0.2]),
    "epochs": st.sampled_from([3, 10, 30]),
    "warmup_epochs": st.sampled_from([0, 2]),
    "train_size": st.sampled_from([None, 10000]),
    "seed": st.integers(0, 3),
}).map(lambda overrides: config(**overrides))


@settings(max_examples=80, deadline=None)
@given(configs=st.lists(_history_config, min_size=4, max_size=9),
       accuracies=st.lists(st.floats(0.5, 0.92), min_size=9, max_size=9))
def test_history_changes_move_toward_the_best_run_and_validate(configs, accuracies):
    *others, current = configs
    history = [RunSummary(config=cfg, status="succeeded", epochs=[], best_val_accuracy=accuracies[i], run_id=i + 1)
               for i, cfg in enumerate(others)]
    run = make_run(**healthy_converged(5), run_id=99, best_val_accuracy=accuracies[-1],
                   **{k: v for k, v in current.items() if k in BASE or k in ("warmup_epochs", "train_size", "seed")})
    advice = one(analyze(run, history), "history")
    best = max(history, key=lambda h: h.best_val_accuracy)
    assert len(advice.changes) <= THRESHOLDS["history_max_changes"]
    if advice.changes:
        TrainingConfig.from_dict({**run.config, **advice.changes})
        assert advice.evidence["best_run_id"] == best.run_id
        for name, value in advice.changes.items():
            assert name != "seed" and value == best.config[name] and value != run.config[name]
    assert "went with" in advice.rationale or "stands out" in advice.rationale


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
