"""A run's per-epoch metrics as float arrays (`Curves`), and the trend measures the rules apply to them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def to_float(value: Any) -> float:
    """A stored value as a float: NaN when it is missing, a bool or not a number."""
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
            number = to_float(row.get("epoch"))
            numbered.append((number if math.isfinite(number) else index + 1, index, row))
        numbered.sort(key=lambda item: (item[0], item[1]))

        def column(key: str, low: float = 0.0, high: float = math.inf) -> np.ndarray:
            """The values of `key`; missing or impossible ones (outside [low, high]) become NaN."""
            values = np.array([to_float(row.get(key)) for _, _, row in numbered], dtype=float)
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
