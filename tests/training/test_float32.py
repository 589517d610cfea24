"""A training step stays in float32: no float64 parameter, gradient, activation, buffer or state.

A float64 leak (a Python float or an int64 promoting an array) would double memory traffic
without changing results visibly, so it is specified here rather than noticed in a benchmark.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.config import TrainingConfig
from training.data import prepare_dataset, synthetic_raw_dataset
from training.layers import Dense, Layer
from training.losses import SoftmaxCrossEntropy
from training.optimizers import make_optimizer
from training.trainer import build_network, fit


def _arrays_of(layer: Layer) -> dict[str, np.ndarray]:
    """Every array a layer holds: params, grads, reused buffers and cached attributes."""
    found = {f"param {k}": v for k, v in layer.params.items()}
    found.update({f"grad {k}": v for k, v in layer.grads.items()})
    found.update({f"buffer {k}": v for k, v in layer._buffers.items()})
    found.update({f"attr {k}": v for k, v in vars(layer).items() if isinstance(v, np.ndarray)})
    return found


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_a_training_step_holds_no_float64(activation, optimizer):
    config = TrainingConfig.from_dict({"hidden_layers": [24, 16], "activation": activation,
                                       "optimizer": optimizer, "dropout": 0.3, "l2": 1e-3})
    network = build_network(config, np.random.default_rng(0))
    opt = make_optimizer(optimizer, network.parameter_count)
    loss_fn = SoftmaxCrossEntropy()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 784), dtype=np.float32)
    labels = rng.integers(0, 10, 10)

    x_seen = x
    for layer in network.layers:
        x_seen = layer.forward(x_seen, training=True)
        assert x_seen.dtype == np.float32, f"{type(layer).__name__} forward gave {x_seen.dtype}"
    loss_fn.forward(x_seen, labels)
    dout = loss_fn.backward()
    assert dout.dtype == np.float32
    for layer in reversed(network.layers):
        dout = layer.backward(dout)
        if dout is not None:
            assert dout.dtype == np.float32, f"{type(layer).__name__} backward gave {dout.dtype}"
    network.add_l2_gradient(config.l2)
    opt.step(network.theta, network.grad, 0.01)

    assert network.theta.dtype == np.float32 and network.grad.dtype == np.float32
    for index, layer in enumerate(network.layers):
        for name, array in _arrays_of(layer).items():
            assert array.dtype in (np.float32, np.bool_), \
                f"layer {index} {type(layer).__name__} {name} is {array.dtype}"
    for name, array in opt.state_dict().items():
        if name != "steps":
            assert array.dtype == np.float32, f"optimizer state {name} is {array.dtype}"
    assert opt._scratch.dtype == np.float32


def test_dense_parameters_stay_views_of_the_flat_float32_buffers_after_training():
    raw = synthetic_raw_dataset(n_train=300, n_test=60, seed=2)
    data = prepare_dataset(raw, validation_fraction=0.2, seed=0)
    config = TrainingConfig.from_dict({"hidden_layers": [16], "epochs": 2, "batch_size": 32,
                                       "dropout": 0.2, "lr_schedule": "cosine", "gradient_clip": 1.0})
    network = fit(config, data).network
    for layer in network.layers:
        if isinstance(layer, Dense):
            for key in ("W", "b"):
                assert layer.params[key].base is network.theta or layer.params[key].base.base is network.theta
                assert layer.params[key].dtype == np.float32 and layer.grads[key].dtype == np.float32


def test_dense_bias_gradient_is_the_column_sum_of_dout():
    layer = Dense(5, 3, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((7, 5), dtype=np.float32)
    dout = np.random.default_rng(2).standard_normal((7, 3), dtype=np.float32)
    layer.forward(x)
    layer.backward(dout)
    np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=0), rtol=1e-6)
    # A smaller last batch uses a prefix of the same ones vector.
    layer.forward(x[:4])
    layer.backward(dout[:4])
    np.testing.assert_allclose(layer.grads["b"], dout[:4].sum(axis=0), rtol=1e-6)
