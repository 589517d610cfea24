"""Value types, number formatting, curve extraction and change validation.

Pure Python + NumPy: the recommender receives plain data (config dicts, epoch
dicts) and never touches the database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.config import FIELDS, ConfigError, TrainingConfig

PRIORITIES = ("critical", "high", "medium", "low")
PRIORITY_RANK = {name: rank for rank, name in enumerate(PRIORITIES)}
CATEGORIES = ("excellent", "good", "fair", "poor", "failed")
STATUSES = ("succeeded", "failed", "diverged", "cancelled")
# Kinds that inform rather than fix: kept even when their `changes` end up empty.
INFO_KINDS = frozenset({"performance", "history", "success"})
# Kinds that flag a problem (everything else is information or a plain "train longer").
PROBLEM_KINDS = frozenset({
    "divergence", "lr_too_high", "lr_too_low", "overfitting", "underfitting", "instability",
    "plateau", "dead_units",
})
EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate",
              "gradient_norm", "gradient_norm_max", "dead_unit_fraction")


@dataclass(frozen=True)
class RunSummary:
    """One run as the rules see it (plain data, no ORM)."""

    config: dict  # a full TrainingConfig.to_dict()
    status: str  # "succeeded" | "failed" | "diverged" | "cancelled"
    epochs: list  # per-epoch dicts with the EpochMetrics keys, ordered by epoch (may be empty)
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    test_accuracy: float | None = None
    message: str = ""  # the trainer's message (e.g. divergence details)
    run_id: int | None = None


@dataclass
class Advice:
    kind: str  # stable machine name: "divergence", "overfitting", ...
    priority: str  # "critical" | "high" | "medium" | "low"
    title: str  # one line
    rationale: str  # cites the numbers it used
    changes: dict  # exact config changes, valid under TrainingConfig ({} for information)
    confidence: float  # 0..1
    evidence: dict = field(default_factory=dict)  # the numbers used (JSON-serialisable)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "priority": self.priority, "title": self.title,
                "rationale": self.rationale, "changes": dict(self.changes),
                "confidence": self.confidence, "evidence": self.evidence}


@dataclass
class Analysis:
    recommendations: list  # list[Advice], by priority (critical > ... > low) then confidence desc
    category: str  # "excellent" | "good" | "fair" | "poor" | "failed"
    summary: dict

    def kinds(self) -> list[str]:
        return [advice.kind for advice in self.recommendations]

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "summary": self.summary,
                "recommendations": [advice.to_dict() for advice in self.recommendations]}


# --- formatting ------------------------------------------------------------------------------------


def pct(fraction: float) -> str:
    """An accuracy as a percentage with one decimal: 0.8853 -> '88.5%'."""
    return f"{100 * fraction:.1f}%"


def pts(fraction: float) -> str:
    """An accuracy difference in percentage points: 0.079 -> '7.9 points'."""
    value = 100 * fraction
    if abs(value) < 0.05:
        value = 0.0
    return f"{value:.1f} points"


def sig(value: float, digits: int = 3) -> str:
    """A loss, rate or norm with 3 significant digits: 0.41234 -> '0.412'."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def loss_str(value: float) -> str:
    """A loss with exactly 3 significant digits: 0.5 -> '0.500', 12 -> '12.0', 0.0647 -> '0.0647'."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    text = f"{value:#.3g}"
    return text[:-1] if text.endswith(".") else text


def show_value(value: Any) -> str:
    """A config value as a user would type it."""
    if value is None:
        return "all"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return sig(value)
    return str(value)


def round_sig(value: float, digits: int = 3) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def jsonable(value: Any) -> Any:
    """Evidence made JSON-safe: NumPy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# --- curves -----------------------------------------------------------------------------------------


def _to_float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


@dataclass
class Curves:
    """The per-epoch series as float arrays (NaN where a value is missing).

    `n` counts every recorded epoch; `finite_n` the leading epochs whose train and
    validation losses and accuracies are all finite: the trend rules look only at those.
    """

    epoch: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    lr: np.ndarray
    grad: np.ndarray
    grad_max: np.ndarray
    dead: np.ndarray

    @classmethod
    def from_epochs(cls, epochs: Any) -> Curves:
        rows = [row for row in (epochs or []) if isinstance(row, dict)]
        numbered = []
        for index, row in enumerate(rows):
            number = _to_float(row.get("epoch"))
            numbered.append((number if math.isfinite(number) else index + 1, index, row))
        numbered.sort(key=lambda item: (item[0], item[1]))

        def column(key: str, low: float = 0.0, high: float = math.inf) -> np.ndarray:
            """The values of `key`; missing or impossible ones (outside [low, high]) become NaN."""
            values = np.array([_to_float(row.get(key)) for _, _, row in numbered], dtype=float)
            with np.errstate(invalid="ignore"):
                values[(values < low) | (values > high)] = np.nan
            return values

        return cls(
            epoch=np.array([int(number) for number, _, _ in numbered], dtype=int),
            train_loss=column("train_loss"),  # +inf kept: a diverged loss
            train_acc=column("train_accuracy", high=1.0),
            val_loss=column("val_loss"),
            val_acc=column("val_accuracy", high=1.0),
            lr=column("learning_rate"),
            grad=column("gradient_norm"),
            grad_max=column("gradient_norm_max"),
            dead=column("dead_unit_fraction", high=1.0),
        )

    @property
    def n(self) -> int:
        return int(self.epoch.shape[0])

    @property
    def finite_n(self) -> int:
        ok = (np.isfinite(self.train_loss) & np.isfinite(self.val_loss)
              & np.isfinite(self.train_acc) & np.isfinite(self.val_acc))
        bad = np.flatnonzero(~ok)
        return int(bad[0]) if bad.size else self.n

    def head(self, count: int) -> Curves:
        """The first `count` epochs."""
        return Curves(*(getattr(self, name)[:count] for name in self.__dataclass_fields__))


def fitted_gain(values: np.ndarray) -> float:
    """Change over `values` according to a least-squares line (robust to one noisy epoch)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return 0.0
    x = np.arange(values.size, dtype=float)
    slope = np.polyfit(x, values, 1)[0]
    return float(slope * (values.size - 1))


def detrended_std(values: np.ndarray) -> float:
    """Standard deviation of `values` around their least-squares line."""
    values = np.asarray(values, dtype=float)
    if values.size < 3:
        return 0.0
    x = np.arange(values.size, dtype=float)
    coefficients = np.polyfit(x, values, 1)
    residuals = values - np.polyval(coefficients, x)
    return float(np.sqrt(np.sum(residuals**2) / (values.size - 2)))


# --- config handling ----------------------------------------------------------------------------------


def config_view(config: Any) -> dict[str, Any]:
    """The run's config as a complete, valid dict for the rules to read.

    Missing fields take their defaults; an invalid field falls back to its default
    (rules must still run on odd stored data; `_valid_changes` checks the real one).
    """
    data = dict(config) if isinstance(config, dict) else {}
    data = {k: v for k, v in data.items() if k in FIELDS}
    for _ in range(len(FIELDS) + 1):
        try:
            return TrainingConfig.from_dict(data).to_dict()
        except ConfigError as exc:
            bad = [name for name in exc.errors if name in data]
            if not bad:
                break
            for name in bad:
                data.pop(name)
    return TrainingConfig().to_dict()


_DROP = object()


def _clamp(name: str, value: Any) -> Any:
    """`value` coerced into field `name`'s type and range, or _DROP when impossible."""
    spec = FIELDS[name]
    if value is None:
        return None if spec.nullable else _DROP
    if spec.kind == "choice":
        return value if value in spec.choices else _DROP
    if spec.kind == "int_list":
        if not isinstance(value, (list, tuple)) or not value:
            return _DROP
        sizes = []
        for item in value:
            number = _to_float(item)
            if not math.isfinite(number):
                return _DROP
            sizes.append(int(min(max(round(number), spec.minimum), spec.maximum)))
        if spec.max_items is not None and len(sizes) > spec.max_items:
            return _DROP
        return sizes
    number = _to_float(value)
    if not math.isfinite(number):
        return _DROP
    if spec.maximum is not None:
        number = min(number, spec.maximum)
    if spec.minimum is not None:
        if spec.exclusive_minimum and number <= spec.minimum:
            return _DROP
        number = max(number, spec.minimum)
    if spec.kind == "int":
        return int(round(number))
    return round_sig(number, 3)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        try:
            return [int(x) for x in a] == [int(x) for x in b]
        except (TypeError, ValueError):
            return False
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    except (TypeError, ValueError):
        return False


def _valid_changes(config: dict, changes: dict) -> dict:
    """`changes` made safe to apply to `config`.

    Unknown fields are dropped; values are coerced and clamped into their field's range
    (a learning rate that would reach 0 is dropped); keys equal to the current value are
    dropped (no no-op advice); finally TrainingConfig.from_dict({**config, **result}) must
    succeed: keys it rejects are dropped (for the warm-up < epochs rule, the epochs change)
    until it does, or {} when the base config itself is invalid.
    """
    base = dict(config) if isinstance(config, dict) else {}
    current = config_view(base)
    result: dict[str, Any] = {}
    for name, value in (changes or {}).items():
        if name not in FIELDS:
            continue
        value = _clamp(name, value)
        if value is _DROP:
            continue
        if _same(base.get(name, current.get(name)), value):
            continue
        result[name] = value
    while True:
        try:
            TrainingConfig.from_dict({**base, **result})
            return result
        except ConfigError as exc:
            bad = [name for name in exc.errors if name in result]
            if not bad and "warmup_epochs" in exc.errors and "epochs" in result:
                bad = ["epochs"]
            if not bad:
                return {}
            for name in bad:
                result.pop(name)
