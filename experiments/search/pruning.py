"""Pruning: whether a running trial should stop after an epoch (median or ASHA, via Optuna's pruners).

Steps are 1-based epochs: a trial reports its validation accuracy after every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import TrialState

from experiments.search.records import SweepSpec, TrialRecord
from experiments.search.study import build_study, optuna_quietly

MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_STEPS = 1
ASHA_MIN_RESOURCE = 1
ASHA_REDUCTION_FACTOR = 3


def make_pruner(name: str) -> optuna.pruners.BasePruner | None:
    """Optuna's pruner for a sweep's `pruner` setting (None for "none")."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_STEPS)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=ASHA_MIN_RESOURCE,
                                                      reduction_factor=ASHA_REDUCTION_FACTOR)
    return None


def rung_steps(last_step: int) -> list[int]:
    """The epochs of ASHA's rungs up to `last_step`: min_resource * factor**rung."""
    steps, rung = [], 0
    while (step := ASHA_MIN_RESOURCE * ASHA_REDUCTION_FACTOR ** rung) <= last_step:
        steps.append(step)
        rung += 1
    return steps


def completed_rungs(intermediate: dict[int, float], *, last_epoch: int | None = None) -> dict[str, float]:
    """ASHA's record of the rungs a trial passed, re-derived from its epochs (up to `last_epoch`,
    by default its last): a trial reports every epoch, so it reached rung r at epoch
    min_resource * factor**r."""
    last = max(intermediate, default=0) if last_epoch is None else last_epoch
    return {f"completed_rung_{rung}": intermediate[step]
            for rung, step in enumerate(rung_steps(last)) if step in intermediate}


def should_prune(spec: SweepSpec, records: Sequence[TrialRecord], current: TrialRecord, epoch: int, *,
                 warm: Sequence[TrialRecord] = ()) -> str:
    """Whether the running trial `current` should stop after `epoch`: the reason, or "".

    The study is rebuilt single-objective (Optuna's pruners do not take several), with
    the other trials' per-epoch validation accuracies as intermediate values and this
    trial as RUNNING with its epochs up to `epoch`; then the pruner decides.
    """
    pruner = make_pruner(spec.pruner)
    if pruner is None:
        return ""
    intermediate = {k: v for k, v in current.intermediate.items() if k <= epoch}
    if epoch not in intermediate:
        return ""
    others = [r for r in records if r.number != current.number]
    asha = spec.pruner == "asha"
    with optuna_quietly():
        study = build_study(spec, others, warm=warm, multi_objective=False, pruner=pruner, pad=False,
                            rung_attrs=completed_rungs if asha else None)
        # the rungs this trial was promoted through before this epoch
        passed = completed_rungs(intermediate, last_epoch=epoch - 1) if asha else {}
        study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values=intermediate,
                                                  user_attrs={"experiment_id": current.experiment_id},
                                                  system_attrs=passed))
        trial = study.get_trials(deepcopy=False)[-1]
        prune = pruner.prune(study, trial)
    if not prune:
        return ""
    best = max(intermediate.values())
    if spec.pruner == "median":
        at_step = [t.intermediate_values[epoch] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if epoch in t.intermediate_values]
        median = float(np.median(at_step)) if at_step else float("nan")
        return (f"pruned at epoch {epoch}: val {percent(best)} < median {percent(median)} of {len(at_step)} "
                f"trials at that epoch")
    reached = sum(epoch in t.intermediate_values for t in study.get_trials(deepcopy=False))
    return (f"pruned at epoch {epoch}: val {percent(intermediate[epoch])} is not in the top 1/{ASHA_REDUCTION_FACTOR} "
            f"of {reached} trials at that epoch")


def percent(fraction: float) -> str:
    """0.841 -> '84.1 %' (the reasons' style)."""
    return f"{100 * fraction:.1f} %"
