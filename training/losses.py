"""Fused softmax + cross-entropy, stable via log-sum-exp."""

from __future__ import annotations

import numpy as np


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer labels.

    forward(logits (n, k), labels (n,)) -> scalar loss; keeps the probabilities so
    backward() -> dlogits (n, k) = (softmax - onehot) / n, written in place.
    """

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        shifted = logits - logits.max(axis=1, keepdims=True)
        # -log softmax of the true class = log(sum exp(z - max)) - (z_y - max)
        true_shifted = shifted[np.arange(logits.shape[0]), labels]
        np.exp(shifted, out=shifted)
        sums = shifted.sum(axis=1, keepdims=True)
        shifted /= sums
        self._probs, self._labels = shifted, labels
        return float(np.mean(np.log(sums[:, 0]) - true_shifted))

    def backward(self) -> np.ndarray:
        grad = self._probs
        n = grad.shape[0]
        grad[np.arange(n), self._labels] -= 1
        grad /= n
        return grad

    @property
    def probabilities(self) -> np.ndarray:
        return self._probs


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
