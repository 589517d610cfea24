"""Specification of rules/fit.py: overfitting (regularise, stop earlier, shrink) and underfitting."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.recommender import analyze
from tests.recommender.synthetic_runs import make_run, of_kind, one, overfit_curves

# --- overfitting ----------------------------------------------------------------------------------


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


# --- underfitting ---------------------------------------------------------------------------------


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


@pytest.mark.parametrize(("width", "named"), [(8, True), (15, True), (16, False), (32, False)])
def test_a_train_val_gap_rules_out_underfitting_only_in_layers_wide_enough_to_memorise(width, named):
    # 4.5 points of gap on a small subset: memorising for a 32-unit layer, sampling noise for 8 units.
    run = make_run(**underfit_curves(final_train_acc=0.85, gap=0.045), hidden_layers=[width], dropout=0.0,
                   epochs=15)
    assert bool(of_kind(analyze(run), "underfitting")) is named
