"""How the recommender writes numbers: in rationales and titles (`pct`, `pts`, `sig`, `loss_str`,
`show_value`), rounded for configs (`round_sig`) and made JSON-safe for evidence (`jsonable`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


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
