"""experiments.search.pruning: median and ASHA decisions on synthetic learning curves (no database, no worker)."""

from __future__ import annotations

from experiments.search.pruning import should_prune
from experiments.search.records import SweepSpec, TrialRecord
from experiments.search.space import validate_sweep

BASE = {"hidden_layers": [16], "epochs": 2, "train_size": 600, "batch_size": 64, "lr_schedule": "constant",
        "dropout": 0.0, "learning_rate": 0.003}
LR_RANGE = {"learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"}}


def _record(number, status, accs, config=None):
    return TrialRecord(number=number, experiment_id=100 + number, status=status,
                       config=config or {**BASE, "learning_rate": 0.01},
                       best_val_accuracy=max(accs) if status == "succeeded" else None,
                       intermediate=dict(enumerate(accs, start=1)))


def _spec(pruner, **kwargs):
    plan = validate_sweep(base_config={**BASE, "epochs": 9}, space=LR_RANGE, strategy="random", seed=1)
    return SweepSpec(strategy="random", params=plan.params, base_config=plan.base_config, budget=10, seed=1,
                     pruner=pruner, **kwargs)


def test_should_prune_with_the_median_pruner_on_synthetic_curves():
    spec = _spec("median")
    done = [_record(1, "succeeded", [0.60, 0.70, 0.75]), _record(2, "succeeded", [0.62, 0.72, 0.78])]
    bad = _record(3, "running", [0.30, 0.40])
    good = _record(3, "running", [0.65, 0.74])
    assert should_prune(spec, done + [bad], bad, 1) == (
        "pruned at epoch 1: val 30.0 % < median 61.0 % of 2 trials at that epoch")
    assert should_prune(spec, done + [good], good, 2) == ""
    assert should_prune(spec, done[:1] + [bad], bad, 1) == ""  # fewer than 2 completed trials
    # Pruned, failed and running trials are not the median's reference.
    others = [_record(1, "pruned", [0.9]), _record(2, "failed", [0.9]), _record(4, "running", [0.9, 0.9])]
    assert should_prune(spec, others + [bad], bad, 1) == ""
    assert should_prune(_spec("none"), done + [bad], bad, 1) == ""


def test_should_prune_with_asha_on_synthetic_curves():
    spec = _spec("asha")
    done = [_record(n, "succeeded", [0.5 + 0.05 * n] * 9) for n in range(1, 6)]
    weak = _record(6, "running", [0.52, 0.53, 0.54])
    strong = _record(6, "running", [0.9, 0.91, 0.92])
    message = should_prune(spec, done + [weak], weak, 1)
    assert message == "pruned at epoch 1: val 52.0 % is not in the top 1/3 of 6 trials at that epoch"
    assert should_prune(spec, done + [strong], strong, 1) == ""
    assert should_prune(spec, done + [strong], strong, 2) == ""  # no rung at epoch 2
    assert should_prune(spec, done + [strong], strong, 3) == ""
