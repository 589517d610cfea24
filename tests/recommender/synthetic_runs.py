"""Synthetic runs for the recommender's specifications: a config on a fixed base, per-epoch metrics from
given curves, typical curve shapes, and finders for the advice of one kind."""

from __future__ import annotations

import numpy as np

from experiments.recommender import Advice, Analysis, RunSummary
from experiments.recommender.types import PROBLEM_KINDS
from training.config import TrainingConfig

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
