"""Layers, specified by their values and by centered-difference gradient checks (float64).

Activations and dropout work in place on the incoming buffer and Dense reuses its
output buffer between calls, so every check feeds fresh copies and copies what it keeps.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.gradcheck import assert_gradients_close, numerical_gradient
from training.layers import Dense, Dropout, LeakyReLU, ReLU, Tanh, keep_mask

F64 = np.float64


def away_from_zero(rng: np.random.Generator, shape, low: float = 0.1, high: float = 2.0) -> np.ndarray:
    """Random values with |x| in [low, high]: no ReLU kink within eps of any entry."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def projected_output(layer, x: np.ndarray, r: np.ndarray, training: bool = False) -> float:
    """f = sum(layer(x) * r): a scalar whose gradient w.r.t. the output is r."""
    return float(np.sum(layer.forward(x.copy(), training) * r))


# ---------------------------------------------------------------- Dense


def test_dense_forward_is_affine_with_zero_initial_bias():
    rng = np.random.default_rng(0)
    layer = Dense(5, 4, rng=rng, dtype=F64)
    np.testing.assert_array_equal(layer.params["b"], np.zeros(4))
    layer.params["b"][...] = rng.standard_normal(4)
    x = rng.standard_normal((6, 5))
    out = layer.forward(x.copy()).copy()
    np.testing.assert_allclose(out, x @ layer.params["W"] + layer.params["b"], rtol=1e-12)
    assert out.shape == (6, 4)


def test_dense_gradients_match_centered_differences():
    rng = np.random.default_rng(1)
    layer = Dense(5, 4, rng=rng, dtype=F64)
    layer.params["b"][...] = rng.standard_normal(4)
    x = rng.standard_normal((6, 5))
    r = rng.standard_normal((6, 4))

    layer.forward(x.copy(), True)
    dx = layer.backward(r.copy()).copy()
    dW = layer.grads["W"].copy()
    db = layer.grads["b"].copy()

    def f() -> float:
        return projected_output(layer, x, r, True)

    assert_gradients_close(dW, numerical_gradient(f, layer.params["W"]), what="dW")
    assert_gradients_close(db, numerical_gradient(f, layer.params["b"]), what="db")
    assert_gradients_close(dx, numerical_gradient(f, x), what="dx")


def test_dense_gradient_formulas_are_xT_dout_and_column_sums():
    rng = np.random.default_rng(2)
    layer = Dense(3, 2, rng=rng, dtype=F64)
    x = rng.standard_normal((4, 3))
    dout = rng.standard_normal((4, 2))
    layer.forward(x.copy())
    dx = layer.backward(dout.copy())
    np.testing.assert_allclose(layer.grads["W"], x.T @ dout, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dx, dout @ layer.params["W"].T, rtol=1e-12)


def test_dense_without_input_grad_still_fills_parameter_grads():
    rng = np.random.default_rng(3)
    layer = Dense(3, 2, rng=rng, dtype=F64, need_input_grad=False)
    x = rng.standard_normal((4, 3))
    dout = rng.standard_normal((4, 2))
    layer.forward(x.copy())
    assert layer.backward(dout.copy()) is None
    np.testing.assert_allclose(layer.grads["W"], x.T @ dout, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=0), rtol=1e-12)


def test_dense_smaller_batch_after_larger_one_gives_the_same_rows():
    rng = np.random.default_rng(4)
    layer = Dense(5, 4, rng=rng, dtype=F64)
    x = rng.standard_normal((10, 5))
    layer.forward(x.copy())
    small = layer.forward(x[:3].copy())
    assert small.shape == (3, 4)
    np.testing.assert_allclose(small, x[:3] @ layer.params["W"], rtol=1e-12)


def test_dense_float32_stays_float32():
    rng = np.random.default_rng(5)
    layer = Dense(5, 4, rng=rng)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32 and layer.params["W"].dtype == np.float32
    dx = layer.backward(np.ones((3, 4), np.float32))
    assert dx.dtype == np.float32 and layer.grads["W"].dtype == np.float32


def test_he_init_std_is_sqrt_two_over_fan_in():
    layer = Dense(1000, 400, rng=np.random.default_rng(6), init="he", dtype=F64)
    W = layer.params["W"]
    assert abs(W.mean()) < 0.01 * np.sqrt(2 / 1000)
    assert W.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.01)


def test_xavier_init_is_uniform_within_glorot_limit():
    layer = Dense(600, 400, rng=np.random.default_rng(7), init="xavier", dtype=F64)
    W = layer.params["W"]
    limit = np.sqrt(6 / (600 + 400))
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.99 * limit
    assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.01)


# ---------------------------------------------------------------- activations


def test_relu_forward_zeroes_negatives_and_keeps_positives():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_array_equal(ReLU().forward(x.copy()), [[0, 0, 0, 0.5, 3.0]])


def test_relu_gradients_match_centered_differences():
    rng = np.random.default_rng(10)
    layer = ReLU()
    x = away_from_zero(rng, (6, 5))
    r = rng.standard_normal((6, 5))
    layer.forward(x.copy())
    dx = layer.backward(r.copy()).copy()
    np.testing.assert_array_equal(dx, np.where(x > 0, r, 0.0))
    assert_gradients_close(dx, numerical_gradient(lambda: projected_output(layer, x, r), x))


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_forward_scales_negatives_by_slope(slope):
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    out = LeakyReLU(slope).forward(x.copy())
    np.testing.assert_allclose(out, [[-2 * slope, -0.5 * slope, 0, 0.5, 3.0]], rtol=1e-15)


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_gradients_match_centered_differences(slope):
    rng = np.random.default_rng(11)
    layer = LeakyReLU(slope)
    x = away_from_zero(rng, (6, 5))
    r = rng.standard_normal((6, 5))
    layer.forward(x.copy())
    dx = layer.backward(r.copy()).copy()
    np.testing.assert_allclose(dx, np.where(x > 0, r, slope * r), rtol=1e-15)
    assert_gradients_close(dx, numerical_gradient(lambda: projected_output(layer, x, r), x))


def test_tanh_forward_matches_numpy():
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    np.testing.assert_allclose(Tanh().forward(x.copy()), np.tanh(x), rtol=1e-15)


def test_tanh_gradients_match_centered_differences():
    rng = np.random.default_rng(12)
    layer = Tanh()
    x = rng.standard_normal((6, 5)) * 1.5
    r = rng.standard_normal((6, 5))
    layer.forward(x.copy())
    dx = layer.backward(r.copy()).copy()
    np.testing.assert_allclose(dx, r * (1 - np.tanh(x) ** 2), rtol=1e-12)
    assert_gradients_close(dx, numerical_gradient(lambda: projected_output(layer, x, r), x))


def test_relu_dead_units_are_columns_with_no_positive_output():
    layer = ReLU()
    layer.forward(np.array([[-1.0, 2.0, -3.0], [-1.0, -2.0, 0.0]]))
    np.testing.assert_array_equal(layer.dead_units(), [True, False, True])


# ---------------------------------------------------------------- dropout


def expected_scale_mask(seed: int, shape, p: float) -> np.ndarray:
    """The specification of a dropout mask: each unit reads 16 bits of the generator's raw
    64-bit draws (little-endian uint16s, in order) and is kept when they are >= round(p * 2**16)."""
    count = int(np.prod(shape))
    words = np.random.default_rng(seed).bit_generator.random_raw(-(-count // 4))
    bits = np.array([(int(w) >> (16 * k)) & 0xFFFF for w in words for k in range(4)])[:count]
    return (bits.reshape(shape) >= round(p * 65536)) / (1 - p)


def test_dropout_is_identity_at_evaluation_and_when_p_is_zero():
    x = np.random.default_rng(20).standard_normal((4, 6))
    layer = Dropout(0.5, np.random.default_rng(0))
    np.testing.assert_array_equal(layer.forward(x.copy(), training=False), x)
    dout = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dout.copy()), dout)
    off = Dropout(0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(off.forward(x.copy(), training=True), x)


def test_dropout_zeroes_about_p_and_preserves_the_mean():
    p = 0.3
    layer = Dropout(p, np.random.default_rng(21))
    out = layer.forward(np.ones((400, 500)), training=True)
    assert np.mean(out == 0) == pytest.approx(p, abs=0.01)
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / (1 - p)], rtol=1e-12)
    assert out.mean() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_keep_mask_keeps_one_minus_p_independently_per_unit(p):
    keep = keep_mask(np.random.default_rng(31), p, (1000, 400))
    assert keep.dtype == np.bool_ and keep.shape == (1000, 400)
    n = keep.size
    # Within 5 binomial standard deviations of 1 - p, overall and in every column.
    assert abs(keep.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    column_means = keep.mean(axis=0)
    assert np.all(np.abs(column_means - (1 - p)) < 5 * np.sqrt(p * (1 - p) / 1000) + 1e-3)
    # Neighbouring units (which share a 64-bit draw) are uncorrelated.
    flat = keep.ravel().astype(float)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01


def test_keep_mask_is_reproducible_from_the_generator_state():
    first = keep_mask(np.random.default_rng(8), 0.3, (7, 9))
    again = keep_mask(np.random.default_rng(8), 0.3, (7, 9))
    np.testing.assert_array_equal(first, again)
    rng = np.random.default_rng(8)
    keep_mask(rng, 0.3, (7, 9))
    assert not np.array_equal(keep_mask(rng, 0.3, (7, 9)), first), "the generator must advance"


def test_dropout_mask_is_in_the_input_dtype_without_float64():
    layer = Dropout(0.2, np.random.default_rng(3))
    x = np.ones((5, 8), np.float32)
    out = layer.forward(x, training=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.unique(out), np.array([0, 1.25], np.float32))
    assert layer.backward(np.ones_like(x)).dtype == np.float32


def test_dropout_backward_is_mask_times_dout():
    p = 0.4
    rng = np.random.default_rng(22)
    x = away_from_zero(rng, (6, 5))
    dout = rng.standard_normal((6, 5))
    layer = Dropout(p, np.random.default_rng(99))
    out = layer.forward(x.copy(), training=True).copy()
    mask = expected_scale_mask(99, x.shape, p)
    np.testing.assert_allclose(out, x * mask, rtol=1e-15)
    np.testing.assert_allclose(layer.backward(dout.copy()), dout * mask, rtol=1e-15)


def test_dropout_gradients_match_centered_differences_with_a_fixed_mask():
    p = 0.5
    rng = np.random.default_rng(23)
    layer = Dropout(p, np.random.default_rng(5))
    x = rng.standard_normal((6, 5))
    r = rng.standard_normal((6, 5))

    def f() -> float:
        layer.rng = np.random.default_rng(5)  # same mask on every evaluation
        return projected_output(layer, x, r, training=True)

    f()
    dx = layer.backward(r.copy()).copy()
    assert np.any(dx == 0) and np.any(dx != 0)
    assert_gradients_close(dx, numerical_gradient(f, x))
