"""Network: shapes, flat parameter buffers, initialisation and whole-network gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.gradcheck import assert_gradients_close, numerical_gradient
from training.layers import Dropout, LeakyReLU, ReLU, Tanh
from training.losses import SoftmaxCrossEntropy
from training.network import Network

F64 = np.float64
SIZES = (5, 7, 4, 3)
ACTIVATIONS = ("relu", "leaky_relu", "tanh")


def small_network(activation: str = "relu", dropout: float = 0.0, seed: int = 0, dtype=F64,
                  sizes=SIZES) -> Network:
    network = Network(sizes, activation=activation, dropout=dropout, rng=np.random.default_rng(seed),
                      dtype=dtype)
    # Non-zero biases so the bias gradients and the relu masks are exercised.
    for layer in network.dense:
        layer.params["b"][...] = np.random.default_rng(seed + 1).normal(0, 0.1, layer.n_out)
    return network


def batch(n: int = 6, seed: int = 3, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, sizes[0])), rng.integers(0, sizes[-1], size=n)


def fix_dropout_masks(network: Network, seed: int = 99) -> None:
    """Give every Dropout layer a freshly seeded rng: the next forward draws the same masks."""
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        if isinstance(layer, Dropout):
            layer.rng = rng


def total_loss(network: Network, x, y, l2: float, training: bool) -> float:
    fix_dropout_masks(network)
    logits = network.forward(x.copy(), training)
    return SoftmaxCrossEntropy().forward(logits, y) + network.l2_penalty(l2)


def analytic_gradient(network: Network, x, y, l2: float, training: bool) -> np.ndarray:
    loss_fn = SoftmaxCrossEntropy()
    fix_dropout_masks(network)
    loss_fn.forward(network.forward(x.copy(), training), y)
    network.backward(loss_fn.backward())
    network.add_l2_gradient(l2)
    return network.grad.copy()


# ---------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_network_gradient_matches_centered_differences(activation, l2):
    network = small_network(activation)
    x, y = batch()
    analytic = analytic_gradient(network, x, y, l2, training=True)
    numeric = numerical_gradient(lambda: total_loss(network, x, y, l2, True), network.theta)
    assert_gradients_close(analytic, numeric, what=f"{activation} l2={l2}")


# Regression: Dropout once scaled the activation's output buffer in place, after Tanh had
# cached it for backward, so tanh + dropout gradients were wrong.
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_network_gradient_with_dropout_matches_centered_differences(activation):
    network = small_network(activation, dropout=0.5)
    x, y = batch()
    analytic = analytic_gradient(network, x, y, 0.05, training=True)
    assert total_loss(network, x, y, 0.05, True) != total_loss(network, x, y, 0.05, False), \
        "dropout should change the training loss"
    numeric = numerical_gradient(lambda: total_loss(network, x, y, 0.05, True), network.theta)
    assert_gradients_close(analytic, numeric, what=f"{activation} with dropout")


def test_add_l2_gradient_adds_l2_times_weights_and_leaves_biases():
    network = small_network()
    x, y = batch()
    plain = analytic_gradient(network, x, y, 0.0, training=False)
    decayed = analytic_gradient(network, x, y, 0.1, training=False)
    network.grad[...] = decayed
    offset = 0
    for layer in network.dense:
        for key, value in layer.params.items():
            size = value.size
            expected = plain[offset: offset + size] + (0.1 * value.ravel() if key == "W" else 0.0)
            np.testing.assert_allclose(decayed[offset: offset + size], expected, rtol=1e-12, atol=1e-15)
            offset += size


def test_l2_penalty_is_half_l2_times_squared_weight_norm_without_biases():
    network = small_network()
    squares = sum(float(np.sum(layer.params["W"] ** 2)) for layer in network.dense)
    assert network.l2_penalty(0.2) == pytest.approx(0.1 * squares, rel=1e-12)
    assert network.l2_penalty(0.0) == 0.0


# ---------------------------------------------------------------- structure and shapes


def test_forward_shapes_for_any_batch_size():
    network = small_network(dtype=np.float32)
    for n in (10, 1, 4, 17):
        x = np.random.default_rng(n).standard_normal((n, 5)).astype(np.float32)
        logits = network.forward(x, training=True)
        assert logits.shape == (n, 3) and logits.dtype == np.float32


def test_forward_rows_do_not_depend_on_batch_composition():
    network = small_network()
    x, _ = batch(n=9)
    full = network.forward(x.copy()).copy()
    part = network.forward(x[2:5].copy()).copy()
    np.testing.assert_allclose(part, full[2:5], rtol=1e-12)


def test_evaluation_forward_ignores_dropout():
    network = small_network(dropout=0.5)
    x, _ = batch()
    first = network.forward(x.copy(), training=False).copy()
    second = network.forward(x.copy(), training=False).copy()
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(network.forward(x.copy(), training=True), first)


def test_layer_stack_is_dense_activation_dropout_and_linear_output():
    network = Network((5, 7, 4, 3), activation="tanh", dropout=0.3, rng=np.random.default_rng(0))
    kinds = [type(layer).__name__ for layer in network.layers]
    assert kinds == ["Dense", "Tanh", "Dropout", "Dense", "Tanh", "Dropout", "Dense"]
    assert network.parameter_count == 5 * 7 + 7 + 7 * 4 + 4 + 4 * 3 + 3
    assert network.theta.shape == network.grad.shape == (network.parameter_count,)
    leaky = Network((5, 7, 3), activation="leaky_relu", rng=np.random.default_rng(0))
    assert [type(layer) for layer in leaky.layers[1:2]] == [LeakyReLU]
    assert not any(isinstance(layer, Dropout) for layer in leaky.layers)


def test_predict_proba_rows_are_softmax_of_logits():
    network = small_network()
    x, _ = batch(n=7)
    logits = network.forward(x.copy()).copy()
    probs = network.predict_proba(x, batch_size=3)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


# ---------------------------------------------------------------- flat buffers


def test_params_and_grads_are_views_of_theta_and_grad():
    network = small_network()
    first = network.dense[0]
    network.theta[0] = 123.0
    assert first.params["W"][0, 0] == 123.0
    network.theta[:] = 0.5
    for layer in network.dense:
        assert np.all(layer.params["W"] == 0.5) and np.all(layer.params["b"] == 0.5)
        assert np.shares_memory(layer.params["W"], network.theta)
        assert np.shares_memory(layer.grads["W"], network.grad)
        assert np.shares_memory(layer.grads["b"], network.grad)
    network.dense[-1].params["b"][-1] = -7.0
    assert network.theta[-1] == -7.0


def test_backward_fills_the_flat_grad_buffer():
    network = small_network()
    x, y = batch()
    network.grad[...] = np.nan
    analytic_gradient(network, x, y, 0.0, training=False)
    assert np.all(np.isfinite(network.grad)) and np.any(network.grad != 0)


def test_weights_load_weights_round_trip():
    source = small_network(seed=1)
    target = small_network(seed=2)
    assert not np.array_equal(source.theta, target.theta)
    weights = source.weights()
    assert sorted(weights) == ["W0", "W1", "W2", "b0", "b1", "b2"]
    assert weights["W0"].shape == (5, 7) and weights["b2"].shape == (3,)
    target.load_weights(weights)
    np.testing.assert_array_equal(target.theta, source.theta)
    # weights() are copies: later training does not change an exported snapshot.
    source.theta[:] = 0
    assert np.any(weights["W0"] != 0)
    # load_weights writes into the flat buffer, keeping the views intact.
    assert np.shares_memory(target.dense[0].params["W"], target.theta)


def test_load_weights_rejects_shape_mismatch():
    network = small_network()
    weights = network.weights()
    weights["W1"] = np.zeros((7, 5))
    with pytest.raises(ValueError, match="W1"):
        network.load_weights(weights)
    other = Network((5, 8, 3), rng=np.random.default_rng(0), dtype=F64)
    with pytest.raises(ValueError, match="W0"):
        other.load_weights(small_network(sizes=(5, 7, 3)).weights())


def test_rejected_load_weights_leaves_the_network_unchanged():
    network = small_network(seed=2)
    weights = small_network(seed=1).weights()
    weights["W1"] = np.zeros((7, 5))
    before = network.theta.copy()
    with pytest.raises(ValueError):
        network.load_weights(weights)
    np.testing.assert_array_equal(network.theta, before)


def test_load_weights_rejects_weights_of_a_deeper_network():
    deeper = small_network(sizes=(5, 7, 4, 3)).weights()
    shallower = small_network(sizes=(5, 7, 4))
    with pytest.raises(ValueError):
        shallower.load_weights(deeper)


def test_load_weights_rejects_weights_of_a_shallower_network():
    shallower = small_network(sizes=(5, 7, 4)).weights()
    deeper = small_network(sizes=(5, 7, 4, 3))
    with pytest.raises(ValueError):
        deeper.load_weights(shallower)


# ---------------------------------------------------------------- initialisation


def test_same_seed_gives_identical_theta_and_different_seeds_differ():
    a = Network(SIZES, rng=np.random.default_rng(42))
    b = Network(SIZES, rng=np.random.default_rng(42))
    c = Network(SIZES, rng=np.random.default_rng(43))
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, c.theta)


def test_biases_start_at_zero():
    network = Network(SIZES, rng=np.random.default_rng(0))
    for layer in network.dense:
        np.testing.assert_array_equal(layer.params["b"], 0)


def test_relu_network_uses_he_init():
    network = Network((800, 500, 10), activation="relu", rng=np.random.default_rng(0), dtype=F64)
    W = network.dense[0].params["W"]
    assert W.std() == pytest.approx(np.sqrt(2 / 800), rel=0.01)
    assert abs(W.mean()) < 0.01 * np.sqrt(2 / 800)


def test_tanh_network_uses_xavier_init():
    network = Network((800, 500, 10), activation="tanh", rng=np.random.default_rng(0), dtype=F64)
    W = network.dense[0].params["W"]
    limit = np.sqrt(6 / 1300)
    assert np.abs(W).max() <= limit
    assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.01)


# ---------------------------------------------------------------- dead units


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_dead_unit_fraction_is_one_when_all_biases_are_very_negative(activation):
    network = small_network(activation)
    for layer in network.dense[:-1]:
        layer.params["b"][...] = -1e6
    network.forward(np.random.default_rng(0).standard_normal((50, 5)))
    assert network.dead_unit_fraction() == 1.0


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dead_unit_fraction_is_zero_for_a_fresh_network(activation):
    network = Network((20, 64, 32, 10), activation=activation, rng=np.random.default_rng(0))
    network.forward(np.random.default_rng(1).standard_normal((256, 20)).astype(np.float32))
    assert network.dead_unit_fraction() == 0.0


def test_dead_unit_fraction_counts_units_across_layers():
    network = small_network("relu")
    network.dense[0].params["b"][:3] = -1e6  # 3 of the 7 + 4 = 11 hidden units
    network.forward(np.random.default_rng(0).standard_normal((50, 5)))
    assert network.dead_unit_fraction() == pytest.approx(3 / 11)


def test_tanh_saturated_units_count_as_dead():
    network = small_network("tanh")
    network.dense[1].params["b"][...] = 1e3
    network.forward(np.random.default_rng(0).standard_normal((20, 5)))
    assert network.dead_unit_fraction() == pytest.approx(4 / 11)
    assert isinstance(network.activations[1], Tanh) and isinstance(small_network().activations[0], ReLU)
