"""Evidence from the user's other runs: which settings went with better results.

Groups the finished runs by each hyperparameter's value and compares the mean best
validation accuracy per value. A direction is claimed only when both groups hold
at least `history_min_group_runs` runs and differ by more than
`history_min_difference_points`; the wording is always "went with", never "causes":
the runs were not a controlled experiment.
"""

from __future__ import annotations

import math
from typing import Any

from training.config import FIELDS

from .changes import config_view
from .formatting import pct, show_value
from .rules.context import make_advice
from .thresholds import THRESHOLDS as T
from .types import Advice, RunSummary

# Statuses whose best validation accuracy says something about the config (a failed
# run crashed for other reasons; a cancelled one did not finish).
USABLE_STATUSES = ("succeeded", "diverged")
# Never grouped or changed: the seed is noise, the validation split changes the measurement.
IGNORED_FIELDS = ("seed", "validation_fraction")
# Tie-break order for fields without grouped evidence (most influential first).
FIELD_ORDER = ("learning_rate", "optimizer", "lr_schedule", "hidden_layers", "dropout", "l2", "epochs",
               "batch_size", "activation", "warmup_epochs", "gradient_clip", "momentum",
               "early_stopping_patience", "lr_decay", "train_size")


def _key(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def _label(name: str, key: Any) -> str:
    return f"{name}={show_value(list(key) if isinstance(key, tuple) else key)}"


def _name(run: RunSummary) -> str:
    return f"#{run.run_id}" if run.run_id is not None else "(unsaved)"


def _usable(run: RunSummary) -> bool:
    value = run.best_val_accuracy
    return (run.status in USABLE_STATUSES and isinstance(value, (int, float))
            and not isinstance(value, bool) and math.isfinite(value) and 0.0 <= value <= 1.0)


def history_advice(run: RunSummary, history, best_val: float | None) -> list[Advice]:
    others = [h for h in (history or ()) if isinstance(h, RunSummary) and h is not run and _usable(h)
              and (run.run_id is None or h.run_id != run.run_id)]
    if len(others) < T["history_min_runs"]:
        return []
    current_cfg = config_view(run.config)
    pool: list[tuple[RunSummary, dict, float]] = [(h, config_view(h.config), float(h.best_val_accuracy))
                                                  for h in others]
    if run.status in USABLE_STATUSES and best_val is not None and math.isfinite(best_val):
        pool.append((run, current_cfg, float(best_val)))

    # Group every field that varies across the pool.
    groups: dict[str, dict[Any, list[float]]] = {}
    for name in FIELDS:
        if name in IGNORED_FIELDS:
            continue
        by_value: dict[Any, list[float]] = {}
        for _, cfg, accuracy in pool:
            by_value.setdefault(_key(cfg[name]), []).append(accuracy)
        if len(by_value) > 1:
            groups[name] = by_value

    claims = []  # (difference, name, text, top key)
    for name, by_value in groups.items():
        solid = sorted(((sum(v) / len(v), len(v), key) for key, v in by_value.items()
                        if len(v) >= T["history_min_group_runs"]), key=lambda g: g[0], reverse=True)
        if len(solid) < 2:
            continue
        (top_mean, top_n, top_key), (next_mean, next_n, next_key) = solid[0], solid[1]
        difference = top_mean - next_mean
        if 100 * difference > T["history_min_difference_points"]:
            text = (f"{_label(name, top_key)}: {pct(top_mean)} mean over {top_n} runs vs "
                    f"{show_value(list(next_key) if isinstance(next_key, tuple) else next_key)}: "
                    f"{pct(next_mean)} over {next_n} runs")
            claims.append((difference, name, text, top_key))
    claims.sort(key=lambda c: c[0], reverse=True)

    best_run, best_cfg, best_accuracy = max(pool, key=lambda item: item[2])
    n_runs = len(pool)
    evidence: dict[str, Any] = {
        "runs_compared": n_runs,
        "groups": {name: [{"value": list(k) if isinstance(k, tuple) else k, "runs": len(v),
                           "mean_best_val_accuracy": sum(v) / len(v)} for k, v in by_value.items()]
                   for name, by_value in groups.items()},
        "claims": [{"field": name, "difference_points": 100 * d, "text": text} for d, name, text, _ in claims],
        "best_run_id": best_run.run_id, "best_run_val_accuracy": best_accuracy,
    }
    head = (f"Across {n_runs} of your finished runs, best validation accuracy went with: "
            + "; ".join(claim[2] for claim in claims[:4]) + "." if claims else
            f"Across {n_runs} of your finished runs no setting stands out yet (a direction needs at least "
            f"{int(T['history_min_group_runs'])} runs per value and more than "
            f"{T['history_min_difference_points']:g} points between their means).")

    changes: dict = {}
    if best_run is run:
        runner_up = max((item for item in pool if item[0] is not run), key=lambda item: item[2])
        tail = (f" This run is your best so far ({pct(best_accuracy)} vs {pct(runner_up[2])} for run "
                f"{_name(runner_up[0])}).")
    else:
        differing = [name for name in FIELDS if name not in IGNORED_FIELDS
                     and _key(best_cfg[name]) != _key(current_cfg[name])]
        ranked = []
        for name in differing:
            by_value = groups.get(name, {})
            best_values = by_value.get(_key(best_cfg[name]), [])
            this_values = by_value.get(_key(current_cfg[name]), [])
            effect = None
            if best_values and this_values:
                effect = sum(best_values) / len(best_values) - sum(this_values) / len(this_values)
            strong = (len(best_values) >= T["history_min_group_runs"]
                      and len(this_values) >= T["history_min_group_runs"])
            if effect is not None and strong and effect < 0:
                continue  # the runs say this run's value does better: do not move away from it
            order = FIELD_ORDER.index(name) if name in FIELD_ORDER else len(FIELD_ORDER)
            ranked.append((-(effect if effect is not None else 0.0), order, name, effect))
        ranked.sort()
        for _, _, name, _ in ranked[: int(T["history_max_changes"])]:
            value = best_cfg[name]
            changes[name] = list(value) if isinstance(value, tuple) else value
        diff_text = ", ".join(f"{name} {show_value(best_cfg[name])} (this run: {show_value(current_cfg[name])})"
                              for name in differing) or "only the seed"
        this_text = f"{pct(best_val)}" if best_val is not None else "no result"
        tail = (f" Your best run is {_name(best_run)} ({pct(best_accuracy)} best validation accuracy vs "
                f"{this_text} here); it differs from this run in: {diff_text}."
                + (f" Moving this run toward it on {', '.join(changes)}." if changes else ""))
        evidence["differences"] = {name: {"best_run": best_cfg[name], "this_run": current_cfg[name]}
                                   for name in differing}
    rationale = head + tail + " These are associations across your runs, not proven causes."
    priority = "medium" if changes and claims else "low"
    confidence = min(0.75, 0.3 + 0.04 * n_runs + (0.1 if claims else 0.0))
    title = ("Your other runs: " + claims[0][2].split(":")[0] + " went with better results" if claims
             else f"Your other runs: {n_runs} compared")
    return [make_advice("history", priority, title, rationale, changes, confidence, evidence)]
