"""Centered-difference gradient checking helpers (float64 only).

`numerical_gradient(f, x)` perturbs `x` in place one entry at a time and
returns (f(x + eps) - f(x - eps)) / (2 eps) for every entry; `f` must take no
arguments and read `x` itself (so `x` may be a parameter array or a view into a
flat buffer). `max_relative_error(a, n)` is the worst entry of
|a - n| / max(1e-8, |a| + |n|).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EPS = 1e-6
TOLERANCE = 1e-6


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """d f / d x by centered differences, restoring `x` afterwards."""
    assert x.dtype == np.float64, "gradient checks must run in float64"
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        index = it.multi_index
        original = x[index]
        x[index] = original + eps
        plus = f()
        x[index] = original - eps
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def max_relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    assert analytic.shape == numeric.shape, (analytic.shape, numeric.shape)
    denom = np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))
    return float(np.max(np.abs(analytic - numeric) / denom))


def assert_gradients_close(analytic: np.ndarray, numeric: np.ndarray,
                           tolerance: float = TOLERANCE, what: str = "gradient") -> None:
    error = max_relative_error(analytic, numeric)
    assert error < tolerance, f"{what}: max relative error {error:.3e} >= {tolerance:g}"
