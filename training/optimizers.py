"""Update rules over one flat parameter buffer.

Every optimizer updates `params` (1-D) in place from `grads` (1-D, same shape)
with a handful of vectorised passes, so the cost does not depend on how many
layers the network has. State lives in flat arrays too, which makes it trivial
to checkpoint (`state_dict` / `load_state_dict`).
"""

from __future__ import annotations

import numpy as np


class Optimizer:
    state_names: tuple[str, ...] = ()

    def __init__(self, size: int, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.steps = 0
        self._scratch = np.zeros(size, dtype)
        for name in self.state_names:
            setattr(self, name, np.zeros(size, dtype))

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.steps += 1
        self._update(params, grads, self.dtype.type(lr))

    def _update(self, params: np.ndarray, grads: np.ndarray, lr) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {name: getattr(self, name).copy() for name in self.state_names}
        state["steps"] = np.array(self.steps, dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name in self.state_names:
            getattr(self, name)[...] = state[name]
        self.steps = int(state["steps"])


class SGD(Optimizer):
    """params -= lr * g"""

    def _update(self, params, grads, lr):
        np.multiply(grads, lr, out=self._scratch)
        params -= self._scratch


class Momentum(Optimizer):
    """Heavy-ball momentum: v = mu * v - lr * g; params += v."""

    state_names = ("velocity",)

    def __init__(self, size: int, dtype=np.float32, *, momentum: float = 0.9):
        super().__init__(size, dtype)
        self.momentum = self.dtype.type(momentum)

    def _update(self, params, grads, lr):
        self.velocity *= self.momentum
        np.multiply(grads, lr, out=self._scratch)
        self.velocity -= self._scratch
        params += self.velocity


class RMSprop(Optimizer):
    """s = rho * s + (1 - rho) * g^2; params -= lr * g / (sqrt(s) + eps)."""

    state_names = ("square_avg",)

    def __init__(self, size: int, dtype=np.float32, *, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(size, dtype)
        self.rho, self.eps = self.dtype.type(rho), self.dtype.type(eps)

    def _update(self, params, grads, lr):
        scratch = self._scratch
        self.square_avg *= self.rho
        np.multiply(grads, grads, out=scratch)
        scratch *= 1 - self.rho
        self.square_avg += scratch
        np.sqrt(self.square_avg, out=scratch)
        scratch += self.eps
        np.divide(grads, scratch, out=scratch)
        scratch *= lr
        params -= scratch


class Adam(Optimizer):
    """Kingma & Ba (2015), Algorithm 1: params -= lr * m_hat / (sqrt(v_hat) + eps).

    The moments are stored scaled, M = m / (1 - b1) and V = v / (1 - b2), which turns
    their updates into M = b1 M + g and V = b2 V + g^2 (two passes fewer over the
    flat buffer per step; Adam is memory-bound here). The bias corrections fold into
    one scalar step size:
        m_hat / (sqrt(v_hat) + eps) = c (1-b1)/(1-b1^t) * M / (sqrt(V) + c eps),
        with c = sqrt((1-b2^t) / (1-b2)).
    """

    state_names = ("m", "v")

    def __init__(self, size: int, dtype=np.float32, *, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__(size, dtype)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, params, grads, lr):
        scaled_m, scaled_v, scratch = self.m, self.v, self._scratch
        scaled_m *= self.dtype.type(self.beta1)
        scaled_m += grads
        scaled_v *= self.dtype.type(self.beta2)
        np.multiply(grads, grads, out=scratch)
        scaled_v += scratch
        t = self.steps
        c = np.sqrt((1 - self.beta2**t) / (1 - self.beta2))
        step = float(lr) * c * (1 - self.beta1) / (1 - self.beta1**t)
        np.sqrt(scaled_v, out=scratch)
        scratch += self.dtype.type(c * self.eps)
        np.divide(scaled_m, scratch, out=scratch)
        scratch *= self.dtype.type(step)
        params -= scratch

    @property
    def first_moment(self) -> np.ndarray:
        """m of the paper (the stored M times 1 - b1)."""
        return self.m * self.dtype.type(1 - self.beta1)

    @property
    def second_moment(self) -> np.ndarray:
        """v of the paper."""
        return self.v * self.dtype.type(1 - self.beta2)


def make_optimizer(name: str, size: int, *, momentum: float = 0.9, dtype=np.float32) -> Optimizer:
    if name == "sgd":
        return SGD(size, dtype)
    if name == "momentum":
        return Momentum(size, dtype, momentum=momentum)
    if name == "rmsprop":
        return RMSprop(size, dtype)
    if name == "adam":
        return Adam(size, dtype)
    raise ValueError(f"unknown optimizer {name!r}")


def clip_by_global_norm(grads: np.ndarray, max_norm: float, norm: float) -> bool:
    """Rescale `grads` in place to `max_norm` when its global `norm` exceeds it."""
    if max_norm > 0 and norm > max_norm:
        grads *= grads.dtype.type(max_norm / (norm + 1e-12))
        return True
    return False
