"""Find the fix: which changes to try on a finished run, and what their measured results say.

Pure Python (no Django). `fix_candidates(config, recommendations)` turns a run's ordered advice
into 2-4 distinct change sets worth training on the same seed and subset: the top problem's
changes, the next distinct problems, the top two combined when they touch different fields, and a
stronger or weaker variant of the top change (a learning rate / 3 beside / 10). `fix_verdict`
compares each candidate's measured best validation accuracy with the parent's and picks the winner
(the largest positive gain; ties go to the candidate that changes fewer fields);
`fix_recommendation` words the result as a recommendation ("verified_fix" or "verified_none").
"""

from __future__ import annotations

import json
import math
from typing import Any

from training.config import FIELDS

from .changes import config_view, valid_changes
from .formatting import round_sig
from .types import INFO_KINDS

MAX_CANDIDATES = 4
# Never varied: a fix is compared with its parent on the same seed and the same data.
FROZEN_FIELDS = frozenset({"seed", "train_size", "validation_fraction"})
VERIFIED_KINDS = frozenset({"verified_fix", "verified_none"})
# A multiplicative step for fields whose useful values span decades.
LOG_FIELDS = frozenset({"learning_rate", "l2", "batch_size"})


def _get(advice: Any, name: str, default: Any = None) -> Any:
    if isinstance(advice, dict):
        return advice.get(name, default)
    return getattr(advice, name, default)


def _key(changes: dict) -> str:
    return json.dumps(changes, sort_keys=True, default=str)


def _clean(config: dict, changes: Any) -> dict:
    """The changes made valid for `config`, without the frozen fields; {} when nothing is left."""
    if not isinstance(changes, dict):
        return {}
    return valid_changes(config, {k: v for k, v in changes.items() if k not in FROZEN_FIELDS})


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _variant(config: dict, changes: dict) -> tuple[str, dict] | None:
    """A stronger or weaker version of `changes`: its main numeric field moved once more (or half as
    far, for a learning rate already moved tenfold). None when no numeric field changed."""
    current = config_view(config)
    names = [n for n in changes if n in FIELDS and FIELDS[n].kind in ("int", "float")]
    if not names:
        return None
    name = "learning_rate" if "learning_rate" in names else names[0]
    old, new = _number(current.get(name)), _number(changes[name])
    if old is None or new is None or old == new:
        return None
    if name == "learning_rate" and old > 0 and new > 0:
        decades = math.log10(new / old)
        if abs(decades) >= 0.75:  # moved ~10x: try ~3x the same way (weaker)
            value, label = old * 3.0 ** math.copysign(1, decades), "weaker"
        else:  # moved ~3x: try 10x (stronger)
            value, label = old * 10.0 ** math.copysign(1, decades), "stronger"
    elif name in LOG_FIELDS and old > 0 and new > 0:
        value, label = new * (new / old), "stronger"
    elif name in LOG_FIELDS and old == 0:
        value, label = new * 10.0, "stronger"
    else:
        value, label = new + (new - old), "stronger"
    if FIELDS[name].kind == "int":
        value = int(round(value))
    else:
        value = round_sig(value, 3)
    return label, {**changes, name: value}


def fix_candidates(config: dict, recommendations: Any, *, limit: int = MAX_CANDIDATES) -> list[dict]:
    """Up to `limit` (2-4 when the advice allows) distinct change sets to try on the run: dicts of
    {kind, title, changes}, every `changes` valid for `config`, never a no-op, never touching the seed
    or the data. Information cards (performance, history, success, verified results) are skipped.
    An empty list means there is nothing to try."""
    config = dict(config) if isinstance(config, dict) else {}
    advices: list[dict] = []
    for advice in recommendations or ():
        kind = str(_get(advice, "kind", "") or "")
        if not kind or kind in INFO_KINDS or kind in VERIFIED_KINDS:
            continue
        changes = _clean(config, _get(advice, "changes", {}))
        if changes:
            advices.append({"kind": kind, "title": str(_get(advice, "title", "") or kind), "changes": changes})
    if not advices:
        return []
    chosen: list[dict] = []
    seen: set[str] = set()

    def add(kind: str, title: str, changes: dict) -> None:
        changes = _clean(config, changes)
        if changes and _key(changes) not in seen and len(chosen) < limit:
            seen.add(_key(changes))
            chosen.append({"kind": kind, "title": title[:200], "changes": changes})

    top, rest = advices[0], advices[1:]
    add(top["kind"], top["title"], top["changes"])
    if rest:
        add(rest[0]["kind"], rest[0]["title"], rest[0]["changes"])
    variant = _variant(config, top["changes"])
    if variant is not None:
        label, changes = variant
        add(top["kind"], f"{top['title']} ({label}: {describe_changes(config, changes)})", changes)
    if rest and not set(top["changes"]) & set(rest[0]["changes"]):
        add(f"{top['kind']}+{rest[0]['kind']}", f"{top['title']} + {rest[0]['title']}",
            {**top["changes"], **rest[0]["changes"]})
    for advice in rest[1:]:
        add(advice["kind"], advice["title"], advice["changes"])
    return chosen


# --------------------------------------------------------------------------- wording


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def describe_changes(config: dict, changes: dict) -> str:
    """'lower the learning rate to 0.003 and raise dropout to 0.2'."""
    current = config_view(config)
    parts = []
    for name, value in changes.items():
        label = FIELDS[name].label.lower() if name in FIELDS else name
        old, new = _number(current.get(name)), _number(value)
        if old is not None and new is not None and old != new:
            verb = "lower" if new < old else "raise"
            parts.append(f"{verb} the {label} to {_show(value)}")
        else:
            parts.append(f"set the {label} to {_show(value)}")
    return " and ".join(parts) or "no change"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _gain_text(candidate: dict) -> str:
    gain = candidate.get("gain_points")
    if gain is None:
        return f"not measured ({candidate.get('status')})"
    if candidate.get("status") == "diverged":
        return f"diverged ({gain:+.1f} points)"
    return f"{gain:+.1f} points ({_pct(candidate.get('best_val_accuracy'))})"


# --------------------------------------------------------------------------- verdict


def measured_value(status: str, best_val_accuracy: float | None) -> float | None:
    """What a run achieved, for comparison: its best val accuracy; 0 when it diverged (no usable
    network); None when it did not finish on its own (failed, cancelled, still running)."""
    if status == "diverged":
        return 0.0
    if status == "succeeded" and best_val_accuracy is not None:
        return float(best_val_accuracy)
    return None


def fix_verdict(parent_best: float | None, measured: list[dict]) -> dict:
    """Compare each tried candidate with the parent.

    `measured`: [{kind, title, changes, trial, status, best_val_accuracy}] in candidate order.
    Returns {parent_best_val_accuracy, candidates: [... + gain_points], winner (index or None),
    helped (how many gained), measured (how many have a result)}. Gains are in percentage points,
    rounded to 0.01; the winner has the largest positive gain, ties broken by fewer changed fields,
    then by candidate order.
    """
    rows = []
    for candidate in measured:
        value = measured_value(candidate.get("status", ""), candidate.get("best_val_accuracy"))
        gain = None
        if value is not None and parent_best is not None:
            gain = round(100 * (value - parent_best), 2)
        rows.append({**candidate, "gain_points": gain})
    winner = None
    for index, row in enumerate(rows):
        if row["gain_points"] is None or row["gain_points"] <= 0:
            continue
        if winner is None or (row["gain_points"], -len(row["changes"])) > (
                rows[winner]["gain_points"], -len(rows[winner]["changes"])):
            winner = index
    return {"parent_best_val_accuracy": parent_best, "candidates": rows, "winner": winner,
            "helped": sum(1 for r in rows if r["gain_points"] is not None and r["gain_points"] > 0),
            "measured": sum(1 for r in rows if r["gain_points"] is not None)}


def fix_recommendation(config: dict, verdict: dict) -> dict:
    """The verdict as a recommendation: {kind, priority, title, rationale, changes, confidence}.

    "verified_fix" (high; the winner's changes) when a candidate beat the parent, else the
    information card "verified_none" (no changes)."""
    rows = verdict["candidates"]
    parent = verdict.get("parent_best_val_accuracy")
    lines = "; ".join(f"{describe_changes(config, r['changes'])}: {_gain_text(r)}" for r in rows)
    if verdict.get("winner") is None:
        tried = verdict.get("measured", 0)
        return {"kind": "verified_none", "priority": "low",
                "title": f"Tried {tried} change{'s' if tried != 1 else ''}; none beat this run's {_pct(parent)}"[:200],
                "rationale": (f"Each candidate was trained on this run's seed and data and compared with its best "
                              f"validation accuracy of {_pct(parent)}: {lines}. None of them helped, so the "
                              "advice above is unverified here: the run may already be near what this network "
                              "and data allow."),
                "changes": {}, "confidence": 0.5}
    best = rows[verdict["winner"]]
    others = len(rows) - 1
    return {"kind": "verified_fix", "priority": "high",
            "title": (f"Verified: {describe_changes(config, best['changes'])} "
                      f"({best['gain_points']:+.1f} points measured)")[:200],
            "rationale": (f"Trained on this run's seed and data, this change reached {_pct(best['best_val_accuracy'])} "
                          f"best validation accuracy against {_pct(parent)}, the best of {others + 1} candidates: "
                          f"{lines}."),
            "changes": dict(best["changes"]), "confidence": 0.9}
