"""Issue 13, item 2: over-regularisation, short runs far from convergence, capacity above dead units in
tiny nets, batch-size effects, and information cards that never outrank a problem."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.recommender import analyze
from experiments.recommender.thresholds import THRESHOLDS as T
from experiments.recommender.types import INFO_KINDS

from .synthetic_runs import healthy_converged, make_run, of_kind, one, still_improving


def smothered(n=10, final_train_acc=0.80, gap=0.005, final_loss=0.60):
    """Heavy regularisation: train accuracy plateaus low, val right next to it, train loss stays high."""
    e = np.arange(n)
    train_acc = list(final_train_acc - 0.06 * np.exp(-e))
    train_loss = list(final_loss + 0.4 * np.exp(-e))
    return dict(train_loss=train_loss, val_loss=[x + 0.02 for x in train_loss], train_acc=train_acc,
                val_acc=[a - gap for a in train_acc])


def top_problem(analysis):
    return next(a for a in analysis.recommendations if a.kind not in INFO_KINDS)


# --- over-regularisation ----------------------------------------------------------------------------------


def test_heavy_l2_is_over_regularisation_and_outranks_train_longer():
    analysis = analyze(make_run(**smothered(), l2=0.1, dropout=0.0, epochs=10))
    advice = one(analysis, "over_regularisation")
    assert advice.priority == "high"
    assert advice.changes == {"l2": 0.001}  # / 10, at most 1e-3
    assert "l2 0.1 -> 0.001" in advice.rationale and "80.0%" in advice.rationale
    assert top_problem(analysis) is advice
    assert not of_kind(analysis, "underfitting")  # wide layers: the regularisation holds it down


def test_heavy_dropout_and_l2_both_reduced():
    analysis = analyze(make_run(**smothered(gap=-0.04), dropout=0.8, l2=0.02, epochs=10))
    advice = one(analysis, "over_regularisation")
    assert advice.changes == {"dropout": 0.2, "l2": 0.001}
    assert "measured with dropout on" in advice.rationale
    assert advice.confidence > one(analyze(make_run(**smothered(), l2=0.02, dropout=0.0)),
                                   "over_regularisation").confidence


def test_dropout_half_goes_to_the_default_and_a_small_l2_is_divided_by_ten():
    advice = one(analyze(make_run(**smothered(), dropout=0.5, l2=0.01)), "over_regularisation")
    assert advice.changes == {"dropout": 0.2, "l2": 0.001}


def test_over_regularisation_demotes_rate_advice_at_a_usual_rate():
    curves = smothered()
    curves["train_loss"] = [1.0, 0.8, 0.7, 0.75, 0.65, 0.7, 0.62, 0.66, 0.6, 0.64]  # oscillating
    analysis = analyze(make_run(**curves, l2=0.1, dropout=0.0, epochs=10))
    assert top_problem(analysis).kind == "over_regularisation"
    assert one(analysis, "lr_too_high").priority == "medium"


@pytest.mark.parametrize("curves, overrides", [
    (smothered(), dict(dropout=0.45, l2=0.009)),  # neither heavy: just below 0.5 and 1e-2
    (smothered(final_train_acc=0.871, final_loss=0.5), dict(l2=0.1)),  # train accuracy above 87 %
    (smothered(gap=0.031), dict(l2=0.1)),  # train/val gap 3.1 points
    (smothered(final_loss=0.39), dict(l2=0.1)),  # train loss fitted (below 0.40)
])
def test_no_over_regularisation_at_the_borders(curves, overrides):
    assert not of_kind(analyze(make_run(**{**curves, "dropout": 0.0, **overrides})), "over_regularisation")


def test_healthy_runs_with_moderate_regularisation_stay_quiet():
    for overrides in (dict(dropout=0.2, l2=1e-4), dict(dropout=0.5, l2=0.0)):
        analysis = analyze(make_run(**healthy_converged(), lr_schedule="cosine", **overrides))
        assert not of_kind(analysis, "over_regularisation") and not of_kind(analysis, "batch_size")


# --- runs stopped far from convergence ------------------------------------------------------------------------


def test_two_steep_epochs_get_train_longer_as_the_top_card():
    run = make_run(train_loss=[0.9, 0.6], val_loss=[0.7, 0.5], train_acc=[0.70, 0.80],
                   val_acc=[0.78, 0.82], epochs=2, dropout=0.0, test_accuracy=0.81)
    analysis = analyze(run)
    advice = one(analysis, "more_epochs")
    assert analysis.recommendations[0] is advice and advice.priority == "high"
    assert advice.changes == {"epochs": 12} and "expected +" in advice.title
    assert "only 2 epochs" in advice.rationale and advice.evidence["short_and_steep"] is True


def test_short_steep_run_outranks_the_information_cards():
    e = np.arange(1, 5)
    run = make_run(train_loss=list(0.8 - 0.1 * e), val_loss=list(0.7 - 0.08 * e), train_acc=list(0.80 + 0.02 * e),
                   val_acc=list(0.79 + 0.02 * e), epochs=4, dropout=0.0)
    analysis = analyze(run)
    assert analysis.kinds()[0] == "more_epochs" and analysis.recommendations[0].priority == "high"
    assert analysis.kinds()[-1] in INFO_KINDS


@pytest.mark.parametrize("val_acc, epochs", [
    ([0.80, 0.81, 0.819], 3),  # last epoch +0.9 points: not steep
    ([0.80, 0.83, 0.832, 0.833, 0.834, 0.836], 6),  # 6 epochs: no longer "short"
])
def test_no_short_run_escalation_at_the_borders(val_acc, epochs):
    n = len(val_acc)
    run = make_run(train_loss=list(np.linspace(0.8, 0.5, n)), val_loss=list(np.linspace(0.7, 0.5, n)),
                   train_acc=[a + 0.01 for a in val_acc], val_acc=val_acc, epochs=epochs, dropout=0.0)
    assert all(a.priority != "high" for a in of_kind(analyze(run), "more_epochs"))


def test_a_long_still_improving_run_keeps_train_longer_at_medium():
    assert one(analyze(make_run(**still_improving(), epochs=15)), "more_epochs").priority == "medium"


# --- capacity above dead units in tiny nets -----------------------------------------------------------------


def test_tiny_layer_underfitting_outranks_dead_units():
    e = np.arange(10)
    train_acc = list(0.78 - 0.05 * np.exp(-e))
    run = make_run(train_loss=list(0.62 + 0.3 * np.exp(-e)), val_loss=list(0.64 + 0.3 * np.exp(-e)),
                   train_acc=train_acc, val_acc=[a - 0.005 for a in train_acc], dead=[0.6] * 10,
                   hidden_layers=[8], dropout=0.0, epochs=10)
    analysis = analyze(run)
    kinds = analysis.kinds()
    assert kinds.index("underfitting") < kinds.index("dead_units")
    assert one(analysis, "dead_units").priority == "medium"
    assert one(analysis, "underfitting").changes["hidden_layers"] == [128]


def test_dead_units_in_a_16_unit_layer_stay_high():
    run = make_run(**healthy_converged(), dead=[0.6] * 20, hidden_layers=[16], dropout=0.0, lr_schedule="cosine")
    assert one(analyze(run), "dead_units").priority == "high"


# --- batch size ---------------------------------------------------------------------------------------------


def test_huge_batch_with_few_steps_gets_a_smaller_batch():
    e = np.arange(10)
    run = make_run(train_loss=list(1.6 - 0.08 * e), val_loss=list(1.6 - 0.08 * e),
                   train_acc=list(0.55 + 0.02 * e), val_acc=list(0.55 + 0.02 * e),
                   batch_size=1024, train_size=10000, validation_fraction=0.2, epochs=10, dropout=0.0)
    advice = one(analyze(run), "batch_size")
    assert advice.changes == {"batch_size": 128} and advice.priority == "high"
    assert "8 optimizer steps per epoch, 80 in the whole run" in advice.rationale


@pytest.mark.parametrize("overrides", [
    dict(batch_size=256, train_size=10000),  # batch below 512
    dict(batch_size=1024, train_size=60000),  # 470 steps (< 500) but train accuracy reached 85 %+
])
def test_large_batch_borders(overrides):
    e = np.arange(10)
    run = make_run(train_loss=list(0.6 - 0.01 * e), val_loss=list(0.6 - 0.01 * e),
                   train_acc=list(0.86 + 0.002 * e), val_acc=list(0.85 + 0.002 * e),
                   validation_fraction=0.2, epochs=10, dropout=0.0, **overrides)
    assert not of_kind(analyze(run), "batch_size")


def test_tiny_noisy_batches_get_a_larger_batch_but_smooth_ones_do_not():
    noisy = [0.80, 0.82, 0.84, 0.85, 0.86, 0.87, 0.86, 0.88, 0.85, 0.88, 0.86, 0.89]
    n = len(noisy)
    base = dict(train_loss=list(np.linspace(0.7, 0.35, n)), val_loss=list(np.linspace(0.7, 0.4, n)),
                train_acc=[a + 0.01 for a in noisy], epochs=n, dropout=0.0, lr_schedule="cosine",
                train_size=6000, validation_fraction=0.2)
    advice = one(analyze(make_run(val_acc=noisy, batch_size=16, **base)), "batch_size")
    assert advice.changes == {"batch_size": 64} and advice.priority == "medium"
    assert not of_kind(analyze(make_run(val_acc=noisy, batch_size=32, **base)), "batch_size")  # > 16
    smooth = list(np.linspace(0.80, 0.87, n))
    assert not of_kind(analyze(make_run(val_acc=smooth, batch_size=16, **{**base, "train_acc": smooth})),
                       "batch_size")


# --- information cards never outrank a problem ------------------------------------------------------------------


def test_information_cards_come_after_every_problem_and_take_its_priority():
    histories = [make_run(**healthy_converged(), best_val_accuracy=acc, learning_rate=lr, run_id=i)
                 for i, (acc, lr) in enumerate([(0.89, 0.001), (0.89, 0.001), (0.80, 0.01), (0.80, 0.01)])]
    run = make_run(**smothered(), l2=0.1, dropout=0.0, learning_rate=0.01, test_accuracy=0.79)
    analysis = analyze(run, histories)
    kinds = analysis.kinds()
    assert "history" in kinds and "performance" in kinds
    first_info = min(i for i, k in enumerate(kinds) if k in INFO_KINDS)
    assert all(k in INFO_KINDS for k in kinds[first_info:])
    assert kinds[0] not in INFO_KINDS
    worst = max(("critical", "high", "medium", "low").index(a.priority)
                for a in analysis.recommendations if a.kind not in INFO_KINDS)
    assert all(("critical", "high", "medium", "low").index(a.priority) >= worst
               for a in analysis.recommendations if a.kind in INFO_KINDS)


def test_thresholds_of_the_new_rules_are_named():
    for name in ("overreg_dropout", "overreg_l2", "overreg_train_accuracy", "overreg_max_gap_points",
                 "overreg_min_train_loss", "short_run_epochs", "steep_gain_points", "capacity_over_dead_width",
                 "large_batch", "large_batch_max_steps", "small_batch"):
        assert name in T
