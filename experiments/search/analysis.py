"""What a sweep has found so far: best trial, best-so-far curve, Pareto front, importance, range warnings.

Only the sweep's own succeeded trials count (TrialRecord.is_own_result): warm-start imports
steer the sampler but are not results of this sweep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import optuna

from experiments.search.records import SweepSpec, TrialRecord, second_value
from experiments.search.space import format_value, is_number
from experiments.search.study import build_study, optuna_quietly
from training.config import FIELDS

IMPORTANCE_MIN_TRIALS = 4
IMPORTANCE_MAX_TRIALS = 300  # importance from the latest results only: a live update stays cheap in long sweeps
EDGE_FRACTION = 0.10
EDGE_TOP_TRIALS = 3


def best_record(records: Iterable[TrialRecord]) -> TrialRecord | None:
    """The most accurate trial (the earlier one on a tie)."""
    return max((r for r in records if r.is_own_result), key=lambda r: (r.best_val_accuracy, -r.number),
               default=None)


def best_so_far(records: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    """The best accuracy after each succeeded trial, in trial order."""
    curve, best = [], None
    for record in sorted(records, key=lambda r: r.number):
        if not record.is_own_result:
            continue
        best = record.best_val_accuracy if best is None else max(best, record.best_val_accuracy)
        curve.append({"trial_number": record.number, "value": best})
    return curve


def pareto_front(spec: SweepSpec, records: Iterable[TrialRecord]) -> list[int]:
    """Experiment ids of the non-dominated succeeded trials (max accuracy, min second), best accuracy first."""
    done = [r for r in records if r.is_own_result and second_value(spec, r) is not None]
    if not spec.multi_objective or not done:
        return []
    with optuna_quietly():
        study = optuna.create_study(directions=["maximize", "minimize"])
        for record in done:
            study.add_trial(optuna.trial.create_trial(
                values=[record.best_val_accuracy, second_value(spec, record)],
                user_attrs={"experiment_id": record.experiment_id, "trial_number": record.number}))
        front = study.best_trials
    front.sort(key=lambda t: (-t.values[0], t.values[1], t.user_attrs["trial_number"]))
    return [t.user_attrs["experiment_id"] for t in front]


def importance(spec: SweepSpec, records: Iterable[TrialRecord]) -> dict[str, float] | None:
    """Each varied field's share of the accuracy's variation (PED-ANOVA), once there is enough data.

    optuna's default fANOVA (and mean decrease in impurity) need scikit-learn, which this
    project does not install; PED-ANOVA needs nothing beyond NumPy.
    """
    varied = {name: p for name, p in spec.params.items() if p.size is None or p.size > 1}
    done = [r for r in records if r.is_own_result][-IMPORTANCE_MAX_TRIALS:]  # the latest: O(1) per live update
    if len(varied) < 2 or len(done) < IMPORTANCE_MIN_TRIALS:
        return None
    try:
        with optuna_quietly(Warning):
            study = build_study(spec, done, multi_objective=False, pad=False)
            scores = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=list(varied))
    except Exception:  # noqa: BLE001 - importance is a hint; never break the sweep's page
        return None
    return {name: round(float(scores.get(name, 0.0)), 4) for name in varied}


def edge_warnings(spec: SweepSpec, records: Iterable[TrialRecord]) -> list[str]:
    """Ranges whose best trials all sit at one end: the optimum may lie outside the range."""
    done = sorted((r for r in records if r.is_own_result),
                  key=lambda r: (-r.best_val_accuracy, r.number))[:EDGE_TOP_TRIALS]
    if len(done) < EDGE_TOP_TRIALS:
        return []
    messages = []
    for name, param in spec.params.items():
        if not param.is_range:
            continue
        values = [r.config.get(name) for r in done]
        if not all(is_number(v) and param.contains(v) for v in values):
            continue
        positions = [param.position(v) for v in values]
        limits = FIELDS[name]
        if all(p >= 1 - EDGE_FRACTION for p in positions):
            at_limit = limits.maximum is not None and param.high >= limits.maximum
            messages.append(f"widen {name} above {format_value(param.high)}: the best {EDGE_TOP_TRIALS} trials "
                            f"all sit in the top {EDGE_FRACTION:.0%} of its range"
                            + (f" (but {format_value(limits.maximum)} is the field's maximum)" if at_limit else ""))
        elif all(p <= EDGE_FRACTION for p in positions):
            at_limit = limits.minimum is not None and param.low <= limits.minimum
            messages.append(f"widen {name} below {format_value(param.low)}: the best {EDGE_TOP_TRIALS} trials "
                            f"all sit in the bottom {EDGE_FRACTION:.0%} of its range"
                            + (f" (but {format_value(limits.minimum)} is the field's minimum)" if at_limit else ""))
    return messages


def analyse(spec: SweepSpec, records: Sequence[TrialRecord]) -> dict[str, Any]:
    """Everything the sweep page shows beyond the trials themselves."""
    best = best_record(records)
    return {
        "best_trial": best.experiment_id if best else None,
        "best_value": best.best_val_accuracy if best else None,
        "pareto_front": pareto_front(spec, records),
        "best_so_far": best_so_far(records),
        "importance": importance(spec, records),
        "warnings": edge_warnings(spec, records),
    }
