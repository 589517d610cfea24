"""`analyze` as a whole: the shape of its answer, what it does with unfinished, odd or arbitrary runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.recommender import THRESHOLDS, RunSummary, analyze
from experiments.recommender.types import INFO_KINDS, PRIORITY_RANK
from tests.recommender.synthetic_runs import (
    healthy_converged,
    make_run,
    of_kind,
    one,
    overfit_curves,
    still_improving,
)
from training.config import FIELDS, ConfigError, TrainingConfig

# --- the API shape --------------------------------------------------------------------------------


def test_thresholds_are_named_numbers():
    assert THRESHOLDS["chance_accuracy"] == 0.10
    assert THRESHOLDS["divergence_loss"] == pytest.approx(4 * math.log(10))
    for name, value in THRESHOLDS.items():
        assert isinstance(name, str)
        assert isinstance(value, (int, float, dict)), name


def test_recommendations_are_ordered_and_serialisable():
    run = make_run(**overfit_curves(), dropout=0.0, test_accuracy=0.875)
    analysis = analyze(run)
    assert_ordered(analysis)
    json.dumps(analysis.summary, allow_nan=False)
    for advice in analysis.recommendations:
        json.dumps(advice.evidence, allow_nan=False)
        assert 0.0 <= advice.confidence <= 1.0
        assert advice.title and "\n" not in advice.title


# --- summary --------------------------------------------------------------------------------------


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


# --- edge cases -----------------------------------------------------------------------------------


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
    # the missing fields take their defaults (all the data, 30 epochs: a sound MLP reaches 90.8 % best val)
    assert analysis.category == "poor" and analysis.summary["best_val_accuracy"] == 0.8


# --- properties -----------------------------------------------------------------------------------


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
    assert_ordered(analysis)
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


def assert_ordered(analysis):
    """Problems by priority then confidence, then the information cards; priorities never rise."""
    ranks = [(a.kind in INFO_KINDS, PRIORITY_RANK[a.priority], -a.confidence) for a in analysis.recommendations]
    assert ranks == sorted(ranks)
    priorities = [PRIORITY_RANK[a.priority] for a in analysis.recommendations]
    assert priorities == sorted(priorities)  # the stored order (priority_rank, rank) is the same

