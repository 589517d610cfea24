"""Layers: each keeps `params` and `grads` dicts with matching keys.

`forward(x, training)` caches what `backward(dout) -> dx` needs. Output buffers
are allocated once per layer and reused (sliced to the batch size), so a
training epoch allocates almost nothing; the caller must consume a layer's
output before calling its `forward` again.
"""

from __future__ import annotations

import numpy as np


class Layer:
    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}
        self._buffers: dict[str, np.ndarray] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A reusable array of `shape`: a leading slice of a buffer sized for the largest batch."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[name] = buf
        return buf[: shape[0]]

    def _ones(self, n: int, dtype) -> np.ndarray:
        """A reusable vector of n ones."""
        ones = self._buffers.get("ones")
        if ones is None or ones.shape[0] < n or ones.dtype != dtype:
            ones = np.ones(n, dtype)
            self._buffers["ones"] = ones
        return ones[:n]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def he_normal(rng: np.random.Generator, n_in: int, n_out: int, dtype) -> np.ndarray:
    """He et al. (2015): std sqrt(2 / n_in), for ReLU-family activations."""
    return (rng.standard_normal((n_in, n_out), dtype=np.float32) * np.sqrt(2.0 / n_in)).astype(dtype)


def xavier_uniform(rng: np.random.Generator, n_in: int, n_out: int, dtype) -> np.ndarray:
    """Glorot & Bengio (2010): U(±sqrt(6 / (n_in + n_out))), for tanh."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype)


INITIALISERS = {"he": he_normal, "xavier": xavier_uniform}


class Dense(Layer):
    """Affine layer y = x @ W + b.  x: (n, n_in) -> y: (n, n_out); W: (n_in, n_out), b: (n_out,)."""

    def __init__(self, n_in: int, n_out: int, *, rng: np.random.Generator, init: str = "he",
                 dtype=np.float32, need_input_grad: bool = True):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        # The first layer's dx (gradient w.r.t. the images) is never used; skipping it
        # saves one of the three matrix products of that layer.
        self.need_input_grad = need_input_grad
        self.params = {"W": INITIALISERS[init](rng, n_in, n_out, dtype), "b": np.zeros(n_out, dtype)}
        self.grads = {"W": np.zeros_like(self.params["W"]), "b": np.zeros_like(self.params["b"])}
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        out = self._buffer("out", (x.shape[0], self.n_out), self.params["W"].dtype)
        np.matmul(x, self.params["W"], out=out)
        out += self.params["b"]
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        np.matmul(self._x.T, dout, out=self.grads["W"])
        # db = 1ᵀ dout as a matrix-vector product: BLAS, about 2.5x faster than np.sum(axis=0).
        np.matmul(self._ones(dout.shape[0], dout.dtype), dout, out=self.grads["b"])
        if not self.need_input_grad:
            return None
        dx = self._buffer("dx", (dout.shape[0], self.n_in), dout.dtype)
        np.matmul(dout, self.params["W"].T, out=dx)
        return dx


class ReLU(Layer):
    """max(x, 0), computed in place on the incoming buffer. Shapes (n, d) -> (n, d).

    Forward keeps the mask x > 0 and multiplies by it (two fast passes; np.maximum is
    slower than both together); backward reuses that mask. Negative inputs become -0.0,
    which equals 0 everywhere downstream.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        mask = self._buffer("mask", x.shape, np.bool_)
        np.greater(x, 0, out=mask)
        np.multiply(x, mask, out=x)
        self._active = mask
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        # Where the output is 0 the unit was inactive: no gradient flows.
        np.multiply(dout, self._active, out=dout)
        return dout

    def dead_units(self) -> np.ndarray:
        """Bool (d,): units that output 0 for every sample of the last forward pass."""
        return ~np.any(self._active, axis=0)


class LeakyReLU(Layer):
    """x if x > 0 else slope * x. Shapes (n, d) -> (n, d)."""

    def __init__(self, slope: float = 0.01):
        super().__init__()
        self.slope = slope

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        # The local slope, 1 where x >= 0 and `slope` below, is both the forward factor and
        # the backward one: x *= factor, dout *= factor. Plain passes only: a ufunc with
        # where= is about 15x slower than a full pass.
        mask = self._buffer("mask", x.shape, np.bool_)
        np.less(x, 0, out=mask)
        self._negative = mask
        factor = self._buffer("factor", x.shape, x.dtype)
        np.multiply(mask, x.dtype.type(self.slope - 1), out=factor)
        factor += x.dtype.type(1)
        np.multiply(x, factor, out=x)
        self._factor = factor
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        np.multiply(dout, self._factor, out=dout)
        return dout

    def dead_units(self) -> np.ndarray:
        """Units negative for every sample (they pass only the small leak)."""
        return np.all(self._negative, axis=0)


class Tanh(Layer):
    """tanh(x) in place. Shapes (n, d) -> (n, d)."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        np.tanh(x, out=x)
        self._out = x
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        # d tanh = 1 - tanh^2
        tmp = self._buffer("tmp", self._out.shape, self._out.dtype)
        np.multiply(self._out, self._out, out=tmp)
        np.subtract(1, tmp, out=tmp)
        np.multiply(dout, tmp, out=dout)
        return dout

    def dead_units(self) -> np.ndarray:
        """Saturated units: |tanh| > 0.99 for every sample (gradient < 2 %)."""
        return np.all(np.abs(self._out) > 0.99, axis=0)


def keep_mask(rng: np.random.Generator, p: float, shape: tuple[int, ...], out: np.ndarray | None = None) -> np.ndarray:
    """Bool `shape`: True (keep) with probability 1 - p, from 16 random bits per unit.

    The bits are the generator's raw 64-bit draws read as four uint16 each (a quarter of
    the draws, and no float conversion: about 3x cheaper than ``rng.random(dtype=float32)``);
    a unit is kept when its uint16 is >= round(p * 65536), so the drop probability is p to
    within 2**-17. Same generator state, same mask.
    """
    count = int(np.prod(shape))
    words = rng.bit_generator.random_raw(-(-count // 4))
    bits = words.view(np.uint16)[:count].reshape(shape)
    if out is None:
        out = np.empty(shape, np.bool_)
    np.greater_equal(bits, np.uint16(min(round(p * 65536), 65535)), out=out)
    return out


class Dropout(Layer):
    """Inverted dropout: zero each unit with probability p, scale the rest by 1/(1-p).

    Identity at evaluation. Shapes (n, d) -> (n, d); the mask comes from `rng` (see
    `keep_mask`), so dropout is reproducible from the trainer's seed.
    """

    def __init__(self, p: float, rng: np.random.Generator):
        super().__init__()
        self.p = p
        self.rng = rng
        self._scale_mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.p == 0:
            self._scale_mask = None
            return x
        keep = keep_mask(self.rng, self.p, x.shape, out=self._buffer("keep", x.shape, np.bool_))
        # scale_mask = keep / (1 - p), in x's dtype: the factor of both passes.
        noise = self._buffer("noise", x.shape, x.dtype)
        np.multiply(keep, x.dtype.type(1.0 / (1.0 - self.p)), out=noise)
        self._scale_mask = noise
        # Not in place: the activation before us caches its output for its backward pass.
        out = self._buffer("out", x.shape, x.dtype)
        np.multiply(x, noise, out=out)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._scale_mask is not None:
            np.multiply(dout, self._scale_mask, out=dout)
        return dout


ACTIVATION_LAYERS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh}
