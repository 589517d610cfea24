"""`analyze(run, history)`: read one run's curves like an expert and propose exact changes.

Pure Python + NumPy; receives plain data (RunSummary) and never imports Django.
The rules live in `rules.py` (single run) and `history.py` (the user's other runs);
every threshold is in THRESHOLDS (`thresholds.py`), which the README quotes.
"""

from __future__ import annotations

import math

import numpy as np

from .base import (
    CATEGORIES,
    INFO_KINDS,
    PRIORITY_RANK,
    PROBLEM_KINDS,
    Advice,
    Analysis,
    Curves,
    RunSummary,
    _valid_changes,
    config_view,
    jsonable,
    pct,
    pts,
)
from .history import history_advice
from .rules import (
    Context,
    _headline,
    dead_units,
    divergence,
    instability,
    lr_too_high,
    lr_too_low,
    make_advice,
    more_epochs,
    overfitting,
    plateau,
    success,
    underfitting,
)
from .thresholds import THRESHOLDS

__all__ = ["THRESHOLDS", "Advice", "Analysis", "RunSummary", "analyze", "_valid_changes",
           "CATEGORIES", "PROBLEM_KINDS", "INFO_KINDS"]

T = THRESHOLDS

# Rule order matters: later rules read what earlier ones found (ctx.fired).
RULES = (divergence, instability, lr_too_high, lr_too_low, overfitting, underfitting, more_epochs,
         plateau, dead_units, success)


def analyze(run: RunSummary, history=()) -> Analysis:
    """Diagnose `run` (and compare it with `history`, the user's other runs)."""
    # Stored metrics of a diverging run can be huge: overflow to inf is expected and handled.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _analyze(run, history)


def _analyze(run: RunSummary, history) -> Analysis:
    cfg = config_view(run.config)
    all_curves = Curves.from_epochs(run.epochs)
    curves = all_curves.head(all_curves.finite_n)
    summary = _summary(run, all_curves)
    category = _category(run, summary)
    ctx = Context(run=run, cfg=cfg, all_curves=all_curves, curves=curves, summary=summary,
                  category=category)

    raw: list[Advice] = []
    unfinished = run.status in ("cancelled", "failed") and all_curves.n < T["min_epochs_cancelled"]
    if not unfinished:
        for rule in RULES:
            if ctx.has("divergence") and rule is not divergence:
                break  # after a divergence the other curve diagnoses are moot
            produced = [a for a in (_finalise(run.config, advice) for advice in rule(ctx)) if a is not None]
            if produced:
                ctx.fired.setdefault(produced[0].kind, []).extend(produced)
                raw.extend(produced)
    raw.append(_performance(run, summary, category))
    if not unfinished:
        raw.extend(a for a in (_finalise(run.config, advice)
                               for advice in history_advice(run, history, summary["best_val_accuracy"]))
                   if a is not None)
    raw.sort(key=lambda a: (PRIORITY_RANK.get(a.priority, len(PRIORITY_RANK)), -a.confidence))
    return Analysis(recommendations=raw, category=category, summary=summary)


def _finalise(config: dict, advice: Advice) -> Advice | None:
    """Validate the advice's changes; drop the advice when a fix has nothing left to change."""
    advice.changes = _valid_changes(config, advice.changes)
    if not advice.changes and advice.kind not in INFO_KINDS:
        return None
    return advice


# --- summary and category ---------------------------------------------------------------------------------


def _accuracy(value) -> float | None:
    """An accuracy given by the caller, or None when missing or impossible (outside 0..1)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def _summary(run: RunSummary, c: Curves) -> dict:
    best = _accuracy(run.best_val_accuracy)
    best_epoch = run.best_epoch if isinstance(run.best_epoch, int) and not isinstance(run.best_epoch, bool) else None
    finite_val = np.isfinite(c.val_acc)
    if best is None and finite_val.any():
        index = int(np.nanargmax(np.where(finite_val, c.val_acc, -np.inf)))
        best, best_epoch = float(c.val_acc[index]), int(c.epoch[index])
    elif best is not None and best_epoch is None and finite_val.any():
        index = int(np.nanargmax(np.where(finite_val, c.val_acc, -np.inf)))
        best_epoch = int(c.epoch[index])
    epochs_to_95 = convergence = None
    if best is not None and best > 0 and finite_val.any():
        reached = np.flatnonzero(finite_val & (c.val_acc >= T["converged_fraction_of_best"] * best))
        if reached.size:
            epochs_to_95 = int(c.epoch[reached[0]])
            span = max(int(c.epoch[-1]) - int(c.epoch[0]), 1)
            position = (epochs_to_95 - int(c.epoch[0])) / span
            convergence = ("fast" if position <= T["fast_convergence"]
                           else "slow" if position > T["slow_convergence"] else "moderate")
    final_train = float(c.train_acc[-1]) if c.n else None
    final_val = float(c.val_acc[-1]) if c.n else None
    gap = None
    if final_train is not None and math.isfinite(final_train) and math.isfinite(final_val):
        gap = round(100 * (final_train - final_val), 2)
    return jsonable({
        "best_val_accuracy": best,
        "best_epoch": best_epoch,
        "test_accuracy": _accuracy(run.test_accuracy),
        "epochs_run": c.n,
        "epochs_to_95pct_best": epochs_to_95,
        "generalization_gap": gap,
        "final_train_accuracy": final_train,
        "final_val_accuracy": final_val,
        "final_train_loss": float(c.train_loss[-1]) if c.n else None,
        "final_val_loss": float(c.val_loss[-1]) if c.n else None,
        "convergence": convergence,
    })


def _category(run: RunSummary, summary: dict) -> str:
    if run.status in ("failed", "diverged"):
        return "failed"
    _, metric = _headline(summary)
    if metric is None:
        return "failed"
    if metric >= T["excellent_accuracy"]:
        return "excellent"
    if metric >= T["good_accuracy"]:
        return "good"
    if metric >= T["fair_accuracy"]:
        return "fair"
    return "poor"


def _performance(run: RunSummary, summary: dict, category: str) -> Advice:
    metric_name, metric = _headline(summary)
    parts = []
    if run.status == "diverged":
        parts.append("The run diverged, so it is rated failed"
                     + (f" ({run.message})" if run.message else ""))
    elif run.status == "failed":
        parts.append("The run failed" + (f" ({run.message})" if run.message else ""))
    elif run.status == "cancelled":
        parts.append(f"The run was cancelled after {summary['epochs_run']} epoch"
                     f"{'' if summary['epochs_run'] == 1 else 's'}")
    if summary["best_val_accuracy"] is not None:
        text = f"Best validation accuracy {pct(summary['best_val_accuracy'])}"
        if summary["best_epoch"] is not None:
            text += f" at epoch {summary['best_epoch']}"
        if summary["test_accuracy"] is not None:
            text += f", test accuracy {pct(summary['test_accuracy'])}"
        parts.append(text)
    elif run.status not in ("diverged", "failed"):
        parts.append("No epoch completed, so there is nothing to rate")
    if summary["epochs_to_95pct_best"] is not None:
        parts.append(f"it reached 95% of its best by epoch {summary['epochs_to_95pct_best']} of "
                     f"{summary['epochs_run']} ({summary['convergence']} convergence)")
    if summary["generalization_gap"] is not None:
        parts.append(f"final train/val accuracy {pct(summary['final_train_accuracy'])} / "
                     f"{pct(summary['final_val_accuracy'])} (gap {pts(summary['generalization_gap'] / 100)})")
    if category == "failed":
        scale = ("Rated failed: diverged and failed runs, and runs without any accuracy, are not rated on "
                 "the accuracy scale.")
    else:
        scale = (f"Rated {category}: excellent >= {pct(T['excellent_accuracy'])}, "
                 f"good >= {pct(T['good_accuracy'])}, "
                 f"fair >= {pct(T['fair_accuracy'])} ({metric_name}; a well-tuned MLP reaches 88-90% test "
                 f"accuracy on Fashion-MNIST, chance is {pct(T['chance_accuracy'])}).")
    rationale = "; ".join(parts) + ". " + scale if parts else scale
    title = (f"Rated {category}: {pct(metric)} {metric_name}" if metric is not None and category != "failed"
             else f"Rated {category}")
    return make_advice("performance", "low", title, rationale, {}, 1.0,
                       {**summary, "category": category,
                        "thresholds": {"excellent_accuracy": T["excellent_accuracy"],
                                       "good_accuracy": T["good_accuracy"],
                                       "fair_accuracy": T["fair_accuracy"]}})
