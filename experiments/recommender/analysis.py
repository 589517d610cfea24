"""`analyze(run, history)`: read one run's curves like an expert and propose exact changes.

Pure Python + NumPy; receives plain data (RunSummary) and never imports Django.
The rules live in `rules/` (single run, one module per family) and `history.py` (the
user's other runs); every threshold is in THRESHOLDS (`thresholds.py`), which the README
quotes.
"""

from __future__ import annotations

import math

import numpy as np

from .changes import config_view, valid_changes
from .curves import Curves
from .formatting import jsonable
from .history import history_advice
from .lab import LabRecord
from .rules import RULES, Context, divergence, performance, rating
from .thresholds import THRESHOLDS
from .types import INFO_KINDS, PRIORITIES, PRIORITY_RANK, Advice, Analysis, RunSummary

__all__ = ["analyze"]

T = THRESHOLDS


def analyze(run: RunSummary, history=(), *, lab: LabRecord | None = None) -> Analysis:
    """Diagnose `run` (and compare it with `history`, the user's other runs); `lab` holds how
    often each kind of advice helped when applied in this lab, which ranks advice of equal
    priority once a kind has enough outcomes."""
    # Stored metrics of a diverging run can be huge: overflow to inf is expected and handled.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _analyze(run, history, lab or LabRecord())


def _analyze(run: RunSummary, history, lab: LabRecord) -> Analysis:
    cfg = config_view(run.config)
    all_curves = Curves.from_epochs(run.epochs)
    curves = all_curves.head(all_curves.finite_n)
    summary = _summary(run, all_curves)
    category = rating(run, summary)
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
    raw.append(performance(run, summary, category))
    if not unfinished:
        raw.extend(a for a in (_finalise(run.config, advice)
                               for advice in history_advice(run, history, summary["best_val_accuracy"]))
                   if a is not None)
    for advice in raw:
        if advice.kind not in INFO_KINDS:
            _cite_lab(advice, lab)
    return Analysis(recommendations=_ordered(raw, lab), category=category, summary=summary)


def _cite_lab(advice: Advice, lab: LabRecord) -> None:
    """Put the lab's record of this kind of advice in its evidence and, when any, its rationale."""
    advice.evidence = {**advice.evidence, "lab": lab.of(advice.kind).to_dict()}
    if text := lab.describe(advice.kind):
        advice.rationale = f"{advice.rationale} {text}"


def _ordered(advices: list[Advice], lab: LabRecord) -> list[Advice]:
    """Problems (and "train longer") by priority, then by the chance they help (the lab's
    measured help rate once the kind has enough outcomes, else the rule's confidence), then
    the information cards.

    Information (performance, success, history) never outranks a problem: when one is present,
    an information card's priority is lowered to the lowest problem priority, so the stored
    order (priority, then rank) is the same as this one.
    """
    def rank(advice: Advice) -> int:
        return PRIORITY_RANK.get(advice.priority, len(PRIORITY_RANK))

    fixes = sorted((a for a in advices if a.kind not in INFO_KINDS),
                   key=lambda a: (rank(a), -lab.score(a.kind, a.confidence)))
    info = [a for a in advices if a.kind in INFO_KINDS]
    if fixes:
        floor = max(rank(a) for a in fixes)
        for advice in info:
            if rank(advice) < floor:
                advice.priority = PRIORITIES[min(floor, len(PRIORITIES) - 1)]
    info.sort(key=lambda a: (rank(a), -a.confidence))
    return fixes + info


def _finalise(config: dict, advice: Advice) -> Advice | None:
    """Validate the advice's changes; drop the advice when a fix has nothing left to change."""
    advice.changes = valid_changes(config, advice.changes)
    if not advice.changes and advice.kind not in INFO_KINDS:
        return None
    return advice


# --- summary ---------------------------------------------------------------------------------------------


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
