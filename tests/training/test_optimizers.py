"""Update rules over flat buffers, specified by hand-computed steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.optimizers import SGD, Adam, Momentum, RMSprop, clip_by_global_norm, make_optimizer

F64 = np.float64
OPTIMIZER_NAMES = ("sgd", "momentum", "rmsprop", "adam")


def arr(*values, dtype=F64) -> np.ndarray:
    return np.array(values, dtype=dtype)


def test_sgd_step_subtracts_lr_times_gradient():
    params = arr(1.0, -2.0, 0.0)
    SGD(3, F64).step(params, arr(0.5, 0.25, -4.0), 0.1)
    np.testing.assert_allclose(params, [0.95, -2.025, 0.4], rtol=1e-15)


def test_momentum_two_steps_accumulate_velocity():
    # v1 = -lr g1 = (-0.1, 0.2);          p1 = (0.9, -1.8)
    # v2 = 0.9 v1 - lr g2 = (-0.14, 0.13); p2 = (0.76, -1.67)
    params = arr(1.0, -2.0)
    opt = Momentum(2, F64, momentum=0.9)
    opt.step(params, arr(1.0, -2.0), 0.1)
    np.testing.assert_allclose(params, [0.9, -1.8], rtol=1e-15)
    np.testing.assert_allclose(opt.velocity, [-0.1, 0.2], rtol=1e-15)
    opt.step(params, arr(0.5, 0.5), 0.1)
    np.testing.assert_allclose(opt.velocity, [-0.14, 0.13], rtol=1e-14)
    np.testing.assert_allclose(params, [0.76, -1.67], rtol=1e-14)


def test_rmsprop_first_step_divides_by_root_of_decayed_square():
    # s = 0.1 g^2 -> step = lr g / (sqrt(0.1) |g| + eps) = lr / sqrt(0.1) * sign(g) = 0.0316227766
    params = arr(1.0, 1.0, 1.0)
    opt = RMSprop(3, F64, rho=0.9, eps=1e-8)
    opt.step(params, arr(2.0, -0.5, 0.0), 0.01)
    np.testing.assert_allclose(opt.square_avg, [0.4, 0.025, 0.0], rtol=1e-14)
    # eps = 1e-8 against sqrt(s) >= 0.16 shifts the step by < 1e-7 relative.
    np.testing.assert_allclose(params - 1.0, [-0.0316227766, 0.0316227766, 0.0], rtol=1e-6)


def test_adam_first_step_moves_each_weight_by_lr():
    # Bias correction makes m_hat = g and v_hat = g^2, so the first step is lr * sign(g).
    grads = arr(0.3, -4.0, 1e-3, 250.0, 0.0)
    params = arr(1.0, 1.0, 1.0, 1.0, 1.0)
    Adam(5, F64).step(params, grads, 0.01)
    np.testing.assert_allclose(params - 1.0, -0.01 * np.sign(grads), rtol=1e-4, atol=1e-12)


def test_adam_second_step_matches_the_paper_by_hand():
    # lr 0.1, b1 0.9, b2 0.999, g1 = 0.5, g2 = -0.2:
    # step 1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25 -> p1 = 1 - 0.1 = 0.9
    # step 2: m = 0.9*0.05 + 0.1*(-0.2) = 0.025;  v = 0.999*0.00025 + 0.001*0.04 = 0.00028975
    #         m_hat = 0.025 / (1 - 0.81) = 0.1315789;  v_hat = 0.00028975 / (1 - 0.998001) = 0.1449475
    #         p2 = 0.9 - 0.1 * 0.1315789 / sqrt(0.1449475) = 0.9 - 0.0345606 = 0.8654394
    params = arr(1.0)
    opt = Adam(1, F64)
    opt.step(params, arr(0.5), 0.1)
    assert params[0] == pytest.approx(0.9, rel=1e-7)
    opt.step(params, arr(-0.2), 0.1)
    np.testing.assert_allclose(opt.first_moment, [0.025], rtol=1e-12)
    np.testing.assert_allclose(opt.second_moment, [0.00028975], rtol=1e-12)
    assert params[0] == pytest.approx(0.8654394, rel=1e-7)
    assert opt.steps == 2


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_zero_gradient_from_fresh_state_leaves_params_unchanged(name):
    params = arr(1.0, -3.0)
    make_optimizer(name, 2, dtype=F64).step(params, arr(0.0, 0.0), 0.5)
    np.testing.assert_array_equal(params, [1.0, -3.0])


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_state_dict_round_trip_gives_identical_subsequent_steps(name):
    rng = np.random.default_rng(0)
    size = 11
    params = rng.standard_normal(size)
    first = make_optimizer(name, size, momentum=0.8, dtype=F64)
    for _ in range(3):
        first.step(params, rng.standard_normal(size), 0.05)
    state = first.state_dict()
    assert int(state["steps"]) == 3

    second = make_optimizer(name, size, momentum=0.8, dtype=F64)
    second.load_state_dict(state)
    assert second.steps == 3
    params_second = params.copy()
    for _ in range(3):
        g = rng.standard_normal(size)
        first.step(params, g, 0.05)
        second.step(params_second, g.copy(), 0.05)
    np.testing.assert_array_equal(params, params_second)


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam"])
def test_state_dict_is_a_snapshot_not_a_live_view(name):
    params = np.ones(4)
    opt = make_optimizer(name, 4, dtype=F64)
    opt.step(params, np.full(4, 0.5), 0.1)
    state = opt.state_dict()
    snapshot = {k: np.array(v, copy=True) for k, v in state.items()}
    opt.step(params, np.full(4, -2.0), 0.1)
    for key, value in snapshot.items():
        np.testing.assert_array_equal(state[key], value)


def test_optimizer_names_map_to_classes():
    assert isinstance(make_optimizer("sgd", 3), SGD)
    assert isinstance(make_optimizer("momentum", 3, momentum=0.5), Momentum)
    assert make_optimizer("momentum", 3, momentum=0.5).momentum == pytest.approx(0.5)
    assert isinstance(make_optimizer("rmsprop", 3), RMSprop)
    assert isinstance(make_optimizer("adam", 3), Adam)
    with pytest.raises(ValueError):
        make_optimizer("adagrad", 3)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_float32_buffers_stay_float32_and_track_float64(name):
    rng = np.random.default_rng(1)
    size = 9
    p64 = rng.standard_normal(size)
    p32 = p64.astype(np.float32)
    opt64 = make_optimizer(name, size, dtype=F64)
    opt32 = make_optimizer(name, size, dtype=np.float32)
    for _ in range(5):
        g = rng.standard_normal(size)
        opt64.step(p64, g, 0.01)
        opt32.step(p32, g.astype(np.float32), 0.01)
    assert p32.dtype == np.float32
    for key, value in opt32.state_dict().items():
        if key != "steps":
            assert value.dtype == np.float32, key
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-6)


def test_clip_by_global_norm_rescales_to_exactly_max_norm():
    grads = arr(3.0, 4.0, 0.0)  # norm 5
    assert clip_by_global_norm(grads, 1.0, float(np.linalg.norm(grads))) is True
    np.testing.assert_allclose(grads, [0.6, 0.8, 0.0], rtol=1e-10)
    assert np.linalg.norm(grads) == pytest.approx(1.0, rel=1e-10)


def test_clip_by_global_norm_leaves_small_gradients_alone():
    grads = arr(0.3, 0.4)  # norm 0.5
    assert clip_by_global_norm(grads, 1.0, 0.5) is False
    np.testing.assert_array_equal(grads, [0.3, 0.4])
    at_limit = arr(0.6, 0.8)  # norm exactly 1
    assert clip_by_global_norm(at_limit, 1.0, 1.0) is False
    np.testing.assert_array_equal(at_limit, [0.6, 0.8])


def test_clip_by_global_norm_zero_means_off():
    grads = arr(300.0, 400.0)
    assert clip_by_global_norm(grads, 0.0, 500.0) is False
    np.testing.assert_array_equal(grads, [300.0, 400.0])


def test_clip_by_global_norm_keeps_float32():
    grads = np.array([30.0, 40.0], dtype=np.float32)
    clip_by_global_norm(grads, 2.5, math.hypot(30, 40))
    assert grads.dtype == np.float32
    np.testing.assert_allclose(grads, [1.5, 2.0], rtol=1e-6)
