"""A fully-connected classifier: Dense -> activation -> [Dropout] ... -> Dense -> logits.

All weights and biases are views into one flat `theta` buffer and all gradients
views into one flat `grad` buffer, so optimizers, clipping, norms, checkpoints
and weight copies work on a single contiguous array each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.layers import ACTIVATION_LAYERS, Dense, Dropout, Layer


class Network:
    """MLP over inputs (n, sizes[0]) producing logits (n, sizes[-1])."""

    def __init__(self, sizes: Sequence[int], *, activation: str = "relu", dropout: float = 0.0,
                 rng: np.random.Generator, dtype=np.float32):
        self.sizes = tuple(sizes)
        self.dtype = np.dtype(dtype)
        init = "xavier" if activation == "tanh" else "he"
        self.layers: list[Layer] = []
        self.dense: list[Dense] = []
        self.activations: list[Layer] = []
        last = len(sizes) - 2
        for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            dense = Dense(n_in, n_out, rng=rng, init=init, dtype=dtype, need_input_grad=index > 0)
            self.layers.append(dense)
            self.dense.append(dense)
            if index < last:
                act = ACTIVATION_LAYERS[activation]()
                self.layers.append(act)
                self.activations.append(act)
                if dropout > 0:
                    self.layers.append(Dropout(dropout, rng))
        self._flatten()

    def _flatten(self) -> None:
        """Move every parameter and gradient into the flat buffers, rebinding views."""
        total = sum(p.size for layer in self.dense for p in layer.params.values())
        self.theta = np.empty(total, self.dtype)
        self.grad = np.zeros(total, self.dtype)
        offset = 0
        for layer in self.dense:
            for key, value in layer.params.items():
                view = self.theta[offset: offset + value.size].reshape(value.shape)
                view[...] = value
                layer.params[key] = view
                layer.grads[key] = self.grad[offset: offset + value.size].reshape(value.shape)
                offset += value.size

    @property
    def parameter_count(self) -> int:
        return self.theta.size

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x: (n, sizes[0]) -> logits (n, sizes[-1]) (a reused buffer: copy to keep)."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dlogits: np.ndarray) -> None:
        """Fills `self.grad` from dL/dlogits (n, sizes[-1])."""
        dout = dlogits
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def add_l2_gradient(self, l2: float) -> None:
        """grad_W += l2 * W for every weight matrix (biases are not decayed)."""
        if l2 <= 0:
            return
        coefficient = self.dtype.type(l2)
        for layer in self.dense:
            layer.grads["W"] += coefficient * layer.params["W"]

    def l2_penalty(self, l2: float) -> float:
        """0.5 * l2 * sum ||W||^2, the loss term whose gradient add_l2_gradient adds."""
        if l2 <= 0:
            return 0.0
        return 0.5 * l2 * float(sum(np.vdot(d.params["W"], d.params["W"]) for d in self.dense))

    def dead_unit_fraction(self) -> float:
        """Share of hidden units inactive on every sample of the last forward pass."""
        dead = [act.dead_units() for act in self.activations]
        total = sum(d.size for d in dead)
        return float(sum(d.sum() for d in dead) / total) if total else 0.0

    def predict_proba(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Class probabilities (n, k) for float inputs (n, sizes[0])."""
        out = np.empty((x.shape[0], self.sizes[-1]), self.dtype)
        for start in range(0, x.shape[0], batch_size):
            logits = self.forward(x[start: start + batch_size])
            shifted = logits - logits.max(axis=1, keepdims=True)
            np.exp(shifted, out=shifted)
            shifted /= shifted.sum(axis=1, keepdims=True)
            out[start: start + batch_size] = shifted
        return out

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of the parameters as W0, b0, W1, b1, ... (for .npz export)."""
        out = {}
        for index, layer in enumerate(self.dense):
            out[f"W{index}"] = layer.params["W"].copy()
            out[f"b{index}"] = layer.params["b"].copy()
        return out

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy W0, b0, ... into the network; all-or-nothing (ValueError on any mismatch)."""
        expected = {f"{key}{index}": layer.params[key]
                    for index, layer in enumerate(self.dense) for key in ("W", "b")}
        if set(weights) != set(expected):
            raise ValueError(
                f"weights hold {sorted(weights)}, this {'-'.join(map(str, self.sizes))} network "
                f"needs {sorted(expected)}"
            )
        for name, target in expected.items():
            if np.shape(weights[name]) != target.shape:
                raise ValueError(f"{name} has shape {np.shape(weights[name])}, network expects {target.shape}")
        for name, target in expected.items():
            target[...] = weights[name]
