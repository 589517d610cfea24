"""Live diagnosis on synthetic curves: every diagnosis fires at the epoch it appears, once per
kind, with plain words, a fix and a valid config change; healthy curves get no critical finding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.recommender.changes import valid_changes
from experiments.recommender.live_diagnosis import (
    Finding,
    SweepContext,
    curve_ceiling,
    diagnose_epoch,
    diagnose_sweep_trial,
    diagnose_trainer_divergence,
    first_critical,
)
from experiments.recommender.thresholds import THRESHOLDS as T

from .synthetic_runs import config, healthy_converged, make_run


def run_of(curves: dict, **overrides):
    return make_run(**curves, **overrides)


def kinds_over_time(run) -> dict[str, Finding]:
    """Call diagnose_epoch after every epoch, as the worker does; the first finding of each kind."""
    seen: dict[str, Finding] = {}
    for k in range(1, len(run.epochs) + 1):
        for finding in diagnose_epoch(run.config, run.epochs[:k]):
            seen.setdefault(finding.kind, finding)
            assert finding.epoch <= k
    return seen


def flat(n: int, value: float) -> list[float]:
    return [value] * n


def learning(n: int) -> dict:
    e = np.arange(n)
    return dict(train_loss=list(1.0 * 0.8 ** e + 0.2), val_loss=list(0.9 * 0.8 ** e + 0.3),
                train_acc=list(0.9 - 0.2 * 0.7 ** e), val_acc=list(0.88 - 0.2 * 0.7 ** e))


def check_finding(finding: Finding, cfg: dict) -> None:
    assert finding.message and finding.title
    assert finding.changes == valid_changes(cfg, finding.changes)
    assert finding.stop_reason().startswith(f"stopped at epoch {finding.epoch}: ")
    assert finding.prune_reason().startswith(f"pruned at epoch {finding.epoch}: ")
    data = finding.to_dict()
    assert set(data) == {"epoch", "kind", "severity", "title", "message", "changes", "evidence"}


def test_healthy_curves_get_no_finding():
    run = run_of(healthy_converged(15), lr_schedule="cosine", epochs=15)
    assert kinds_over_time(run) == {}


def test_nan_loss_is_critical_divergence_at_its_epoch():
    curves = learning(5)
    curves["train_loss"][2] = math.nan
    curves["val_loss"][2] = math.nan
    run = run_of(curves, learning_rate=0.1, optimizer="sgd")
    found = kinds_over_time(run)
    finding = found["divergence"]
    assert (finding.epoch, finding.severity) == (3, "critical")
    assert finding.stop_reason() == "stopped at epoch 3: loss became NaN; lower the learning rate (0.1 → 0.01)"
    assert finding.changes == {"learning_rate": 0.01}
    check_finding(finding, run.config)
    assert list(found) == ["divergence"]  # nothing echoes a divergence


def test_loss_above_the_trainers_limit_is_divergence():
    curves = learning(2)
    curves["train_loss"][0] = 25.0
    finding = diagnose_epoch(config(learning_rate=0.1), run_of(curves, learning_rate=0.1).epochs[:1])[0]
    assert (finding.kind, finding.epoch) == ("divergence", 1)
    assert "exploded to 25.0" in finding.message


def test_loss_rising_far_above_its_minimum_is_divergence_before_the_trainers_limit():
    curves = learning(6)
    curves["train_loss"][3] = 2.0  # minimum so far 0.84; 2.0 > 1.5x and > 1.15
    found = kinds_over_time(run_of(curves))
    assert found["divergence"].epoch == 4
    assert "2.4x its minimum of 0.840" in found["divergence"].message


def test_a_small_rise_is_no_divergence():
    curves = learning(6)
    curves["train_loss"][3] = curves["train_loss"][2] * 1.2
    assert "divergence" not in kinds_over_time(run_of(curves))


def test_collapse_to_guessing_is_divergence():
    curves = learning(6)
    curves["val_acc"][4] = 0.1
    assert kinds_over_time(run_of(curves))["divergence"].epoch == 5


def test_gradient_norm_growth_is_exploding_gradients():
    n = 6
    grad = [2.0, 1.0, 1.5, 30.0, 200.0, 300.0]
    found = kinds_over_time(run_of(learning(n), grad=grad))
    finding = found["exploding_gradients"]
    assert (finding.epoch, finding.severity) == (4, "warning")  # 30x the minimum of 1.0
    assert "gradient_clip" in finding.changes
    check_finding(finding, config())


def test_very_large_gradient_growth_is_critical():
    grad = [2.0, 1.0, 150.0]
    finding = kinds_over_time(run_of(learning(3), grad=grad))["exploding_gradients"]
    assert (finding.epoch, finding.severity) == (3, "critical")
    assert finding.changes["learning_rate"] == pytest.approx(0.001 / 3, rel=0.01)
    assert finding.message.startswith("gradient norm grew 150x")


def test_one_batch_spike_after_epoch_one_is_a_warning():
    grad = [1.0, 1.0, 1.0, 1.0]
    grad_max = [20.0, 2.0, 40.0, 2.0]  # 20x in epoch 1 is normal (large initial gradients)
    finding = kinds_over_time(run_of(learning(4), grad=grad, grad_max=grad_max))["exploding_gradients"]
    assert (finding.epoch, finding.severity) == (3, "warning")


def test_healthy_gradients_that_shrink_are_fine():
    grad = [3.0, 2.0, 1.6, 1.4, 1.3, 1.2]
    assert "exploding_gradients" not in kinds_over_time(run_of(learning(6), grad=grad))


def test_val_accuracy_near_chance_after_two_epochs_is_not_learning():
    n = 5
    curves = dict(train_loss=flat(n, 2.3), val_loss=flat(n, 2.3), train_acc=flat(n, 0.1),
                  val_acc=[0.1, 0.102, 0.11, 0.11, 0.11])
    run = run_of(curves, optimizer="sgd", learning_rate=1e-5)
    finding = kinds_over_time(run)["not_learning"]
    assert (finding.epoch, finding.severity) == (2, "critical")
    assert finding.prune_reason() == ("pruned at epoch 2: not learning — val 10.2 % after 2 epochs, near chance; "
                                      "raise the learning rate (1e-05 → 0.0001)")
    check_finding(finding, run.config)


def test_far_too_slow_learning_is_critical_but_a_normal_start_is_not():
    n = 4
    slow = dict(train_loss=flat(n, 2.0), val_loss=flat(n, 2.0), train_acc=flat(n, 0.3),
                val_acc=[0.25, 0.37, 0.42, 0.45])
    finding = kinds_over_time(run_of(slow, learning_rate=1e-5))["not_learning"]
    assert finding.epoch == 2 and finding.message.startswith("learning far too slowly — val 37.0 %")
    normal = dict(slow, val_acc=[0.55, 0.62, 0.7, 0.74])  # the slowest healthy runs measured
    assert "not_learning" not in kinds_over_time(run_of(normal))


def test_not_learning_waits_for_enough_optimizer_steps():
    n = 4
    curves = dict(train_loss=flat(n, 2.3), val_loss=flat(n, 2.3), train_acc=flat(n, 0.1), val_acc=flat(n, 0.1))
    # 1 000 images, batch 1024: one step per epoch; 20 steps are needed before judging
    run = run_of(curves, train_size=1000, batch_size=1024)
    assert "not_learning" not in kinds_over_time(run)


def test_small_validation_sets_widen_the_slow_limit():
    n = 3
    curves = dict(train_loss=flat(n, 1.5), val_loss=flat(n, 1.5), train_acc=flat(n, 0.4),
                  val_acc=[0.3, 0.4, 0.45])
    # 300 images: 30 validation images, the binomial noise is ~9 points: 40 % is not "far too slow"
    assert "not_learning" not in kinds_over_time(run_of(curves, train_size=300, batch_size=16))
    assert "not_learning" in kinds_over_time(run_of(curves))


def test_not_learning_fixes_match_the_cause():
    n = 3
    stuck = dict(train_loss=flat(n, 2.3), val_loss=flat(n, 2.3), train_acc=flat(n, 0.1), val_acc=flat(n, 0.1))
    high = kinds_over_time(run_of(stuck, learning_rate=0.05))["not_learning"]
    assert high.changes == {"learning_rate": 0.005}
    heavy = kinds_over_time(run_of(stuck, dropout=0.9))["not_learning"]
    assert heavy.changes == {"dropout": 0.2}
    tiny = kinds_over_time(run_of(stuck, hidden_layers=[3]))["not_learning"]
    assert tiny.changes == {"hidden_layers": [128]}
    low_and_heavy = kinds_over_time(run_of(stuck, optimizer="sgd", learning_rate=1e-4, dropout=0.7))["not_learning"]
    assert low_and_heavy.changes == {"learning_rate": 0.001}  # the rate first: it is 100x too low


def test_dead_units_warning_and_critical():
    n = 4
    dead = [0.1, 0.6, 0.7, 0.7]
    finding = kinds_over_time(run_of(learning(n), dead=dead))["dead_units"]
    assert (finding.epoch, finding.severity) == (2, "warning")
    assert finding.changes == {"learning_rate": 0.000333, "activation": "leaky_relu"}
    check_finding(finding, config())
    curves = dict(learning(n), val_acc=[0.4, 0.45, 0.45, 0.45])
    critical = kinds_over_time(run_of(curves, dead=[0.2, 0.95, 0.95, 0.95], train_size=1000))["dead_units"]
    assert (critical.epoch, critical.severity) == (2, "critical")


def test_tanh_saturation_is_a_warning():
    finding = kinds_over_time(run_of(learning(3), dead=[0.1, 0.2, 0.6], activation="tanh"))["saturation"]
    assert (finding.epoch, finding.severity) == (3, "warning")
    assert "saturated" in finding.message


def test_plateau_only_with_a_constant_schedule():
    n = 10
    val = [0.80, 0.84, 0.85, 0.85, 0.849, 0.85, 0.848, 0.85, 0.851, 0.85]
    curves = dict(learning(n), val_acc=val)
    finding = kinds_over_time(run_of(curves, lr_schedule="constant", epochs=n))["plateau"]
    assert (finding.epoch, finding.severity) == (8, "warning")
    assert finding.changes == {"lr_schedule": "cosine"}
    assert "plateau" not in kinds_over_time(run_of(curves, lr_schedule="cosine", epochs=n))


def test_each_kind_once_at_its_first_epoch_and_ordered():
    curves = learning(8)
    found = diagnose_epoch(config(), run_of(curves, dead=[0.6] * 8, grad=[1, 1, 30, 1, 1, 1, 1, 1]).epochs)
    assert [f.kind for f in found] == ["dead_units", "exploding_gradients"]
    assert [f.epoch for f in found] == [1, 3]
    assert first_critical(found) is None


def test_trainer_divergence_inside_an_epoch():
    run = run_of(learning(2), learning_rate=0.5, optimizer="sgd")
    finding = diagnose_trainer_divergence(run.config, run.epochs, "training loss became nan at epoch 3, batch 7")
    assert (finding.epoch, finding.kind, finding.severity) == (3, "divergence", "critical")
    assert finding.stop_reason() == "stopped at epoch 3: loss became NaN; lower the learning rate (0.5 → 0.05)"
    empty = diagnose_trainer_divergence(run.config, [], "gradient norm became inf at epoch 1, batch 10")
    assert empty.epoch == 1 and empty.title == "Loss became infinite"


def test_odd_input_is_tolerated():
    assert diagnose_epoch({}, []) == []
    assert diagnose_epoch({"learning_rate": "x"}, [{"epoch": 1}, "junk"]) == []


def test_thresholds_are_named():
    for key in ("live_explosion_ratio", "live_grad_growth", "live_not_learning_epochs", "live_dead_fraction",
                "live_plateau_patience", "live_slow_accuracy"):
        assert key in T


# --------------------------------------------------------------------------- in a sweep (diagnostic pruning)

def trial(val_acc: list[float], **overrides):
    """A healthy-looking trial's epochs with this val accuracy curve (losses falling)."""
    n = len(val_acc)
    losses = [1.0 / (i + 1) + 0.3 for i in range(n)]
    cfg = {"epochs": 12, "optimizer": "adam", "learning_rate": 1e-3, "lr_schedule": "cosine", **overrides}
    return run_of({"train_loss": losses, "val_loss": losses, "train_acc": val_acc, "val_acc": val_acc}, **cfg)


def sweep_findings_over_time(run, context):
    """diagnose_sweep_trial after every epoch, as the prune check does: the first finding, or None."""
    for k in range(1, len(run.epochs) + 1):
        if (finding := diagnose_sweep_trial(run.config, run.epochs[:k], context)) is not None:
            assert finding.epoch == k and finding.critical
            return finding
    return None


LEADER = SweepContext(best=0.86, best_trial=5)


def test_the_sweep_context_is_the_best_usable_other_trial():
    assert SweepContext.of([]) is None and SweepContext.of([(1, None), (2, math.nan)]) is None
    assert SweepContext.of([(1, 0.80), (2, None), (3, 0.84)]) == SweepContext(best=0.84, best_trial=3)


def test_a_slow_learner_far_below_the_sweeps_best_is_hopeless_with_its_extrapolated_ceiling():
    run = trial([0.40, 0.48, 0.53, 0.56, 0.58, 0.60, 0.61, 0.62, 0.62, 0.63, 0.63, 0.63])
    finding = sweep_findings_over_time(run, LEADER)
    assert finding is not None and finding.kind == "hopeless" and finding.epoch == T["sweep_min_epoch"]
    assert finding.message.startswith("its curve extrapolates to ")
    assert finding.message.endswith("at epoch 12 (best 53.0 % so far), below the best trial's 86.0 % (#5)")
    ceiling = finding.evidence["ceiling"]
    assert ceiling == pytest.approx(curve_ceiling(np.array([0.40, 0.48, 0.53]), 12))
    assert 0.53 < ceiling < LEADER.best - T["sweep_hopeless_margin"]
    assert finding.prune_reason().startswith("pruned at epoch 3: its curve extrapolates to ")


def test_the_ceiling_is_the_best_plus_the_log_fit_slope_plus_the_noise_allowance():
    flat_curve = np.array([0.7, 0.7, 0.7])
    assert curve_ceiling(flat_curve, 12) == pytest.approx(0.7)
    rising = np.array([0.5, 0.5 + 0.1 * math.log(2), 0.5 + 0.1 * math.log(3)])  # exactly 0.5 + 0.1 ln e
    assert curve_ceiling(rising, 12) == pytest.approx(0.5 + 0.1 * math.log(12))
    noisy = np.array([0.7, 0.6, 0.7])  # a 10-point drop: may still jump
    assert curve_ceiling(noisy, 12) >= 0.7 + T["sweep_noise_factor"] * 0.1 - 1e-9


def test_a_trial_that_can_still_catch_up_is_not_hopeless():
    # steep: 60 -> 75 % in 3 epochs extrapolates past the leader's 86 %
    assert sweep_findings_over_time(trial([0.60, 0.70, 0.75, 0.79, 0.82, 0.84, 0.85, 0.86, 0.87]), LEADER) is None


def test_a_plateau_below_the_sweeps_best_is_a_sweep_finding():
    # 82 % at epoch 4, then nothing new: flat enough that only the plateau names it
    curve = [0.70, 0.78, 0.81, 0.82, 0.815, 0.82, 0.818, 0.82, 0.82, 0.82]
    context = SweepContext(best=0.845, best_trial=2)
    finding = sweep_findings_over_time(trial(curve), context)
    assert finding is not None and finding.kind == "sweep_plateau" and finding.epoch == 7
    assert finding.message == ("plateau — no new best for 3 epochs (best 82.0 % at epoch 4), "
                               "below the best trial's 84.5 % (#2)")


def test_a_plateau_at_the_top_of_the_sweep_is_not_pruned():
    curve = [0.80, 0.84, 0.85, 0.86, 0.86, 0.86, 0.86, 0.86]
    assert sweep_findings_over_time(trial(curve), SweepContext(best=0.861, best_trial=2)) is None


def test_no_sweep_finding_without_context_before_epoch_3_or_on_the_last_epoch():
    low = [0.30, 0.35, 0.37, 0.38]
    assert sweep_findings_over_time(trial(low), None) is None
    assert diagnose_sweep_trial(trial(low).config, trial(low).epochs[:2], LEADER) is None
    assert diagnose_sweep_trial(trial(low, epochs=3).config, trial(low, epochs=3).epochs[:3], LEADER) is None


def test_a_high_rate_with_a_decaying_schedule_waits_for_the_decay():
    # rmsprop at 0.037 (high) under cosine: noisy and low until the rate comes down
    curve = [0.55, 0.55, 0.60, 0.60, 0.63, 0.63, 0.76, 0.74, 0.76, 0.76, 0.76, 0.77]
    run = trial(curve, optimizer="rmsprop", learning_rate=0.037)
    finding = sweep_findings_over_time(run, LEADER)
    assert finding is not None and finding.epoch >= T["sweep_high_rate_wait"] * 12
    constant = trial(curve, optimizer="rmsprop", learning_rate=0.037, lr_schedule="constant")
    assert sweep_findings_over_time(constant, LEADER).epoch == 3  # no decay to wait for


def test_sweep_findings_never_reach_a_single_runs_diagnosis():
    # diagnose_epoch (runs) keeps the plateau a warning and knows nothing of hopeless
    curve = [0.70, 0.78, 0.81, 0.82, 0.815, 0.82, 0.818, 0.82, 0.82, 0.82]
    run = trial(curve, lr_schedule="constant")
    found = kinds_over_time(run)
    assert "hopeless" not in found and "sweep_plateau" not in found
    assert found["plateau"].severity == "warning"
