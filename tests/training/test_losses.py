"""SoftmaxCrossEntropy: values, numerical stability and the fused gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.training.gradcheck import assert_gradients_close, numerical_gradient
from training.losses import SoftmaxCrossEntropy, log_softmax


def naive_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """-log(softmax) written out directly (fine for moderate logits)."""
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(probs[np.arange(len(labels)), labels])))


def test_loss_matches_direct_negative_log_softmax():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((8, 5)) * 3
    labels = rng.integers(0, 5, size=8)
    loss = SoftmaxCrossEntropy().forward(logits.copy(), labels)
    assert loss == pytest.approx(naive_cross_entropy(logits, labels), rel=1e-12)


def test_forward_does_not_modify_the_logits():
    logits = np.random.default_rng(1).standard_normal((4, 3))
    before = logits.copy()
    SoftmaxCrossEntropy().forward(logits, np.array([0, 1, 2, 0]))
    np.testing.assert_array_equal(logits, before)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_uniform_logits_give_log_k(k):
    logits = np.full((4, k), 7.25)
    labels = np.arange(4) % k
    assert SoftmaxCrossEntropy().forward(logits, labels) == pytest.approx(math.log(k), rel=1e-12)


def test_huge_logits_give_finite_and_correct_loss():
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]])
    labels = np.array([0, 1, 2])
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(logits, labels)
    # Row 1: certain and right -> 0. Row 2: true logit 1e4 below the max -> 1e4.
    # Row 3: uniform over 3 -> ln 3.
    assert math.isfinite(loss)
    assert loss == pytest.approx((0.0 + 1e4 + math.log(3)) / 3, rel=1e-12)
    grad = loss_fn.backward()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0], [0, 0, 0], atol=1e-300)
    np.testing.assert_allclose(grad[1], np.array([1, -1, 0]) / 3, atol=1e-15)


def test_huge_logits_in_float32_are_finite():
    logits = np.array([[3e4, -3e4, 0.0]], dtype=np.float32)
    loss_fn = SoftmaxCrossEntropy()
    assert loss_fn.forward(logits, np.array([1])) == pytest.approx(6e4, rel=1e-6)
    assert np.all(np.isfinite(loss_fn.backward()))


def test_backward_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, size=6)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(logits.copy(), labels)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss_fn.probabilities, probs, rtol=1e-12)
    grad = loss_fn.backward()
    np.testing.assert_allclose(grad, (probs - np.eye(4)[labels]) / 6, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)


def test_softmax_cross_entropy_dlogits_match_centered_differences():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((7, 5))  # unit scale: no entry so small that rounding dominates
    labels = rng.integers(0, 5, size=7)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(logits.copy(), labels)
    analytic = loss_fn.backward().copy()
    numeric = numerical_gradient(lambda: SoftmaxCrossEntropy().forward(logits.copy(), labels), logits)
    assert_gradients_close(analytic, numeric)


def test_log_softmax_matches_direct_formula_and_is_stable():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((3, 4))
    np.testing.assert_allclose(
        log_softmax(logits), np.log(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)), rtol=1e-12
    )
    huge = np.array([[1e4, 0.0, -1e4]])
    np.testing.assert_allclose(log_softmax(huge), [[0.0, -1e4, -2e4]], rtol=1e-12)
