"""The training loop, specified on a small synthetic dataset (fast) and on real data (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import TrainingConfig
from training.data import prepare_dataset, synthetic_raw_dataset
from training.trainer import (
    METRIC_FIELDS,
    CheckpointError,
    EpochMetrics,
    Outcome,
    fit,
    load_network_from_checkpoint,
)

# The metrics a seed determines: the timings differ from one run of the same config to the next.
SEEDED_METRICS = tuple(name for name in METRIC_FIELDS if name not in ("seconds", "samples_per_second"))


@pytest.fixture(scope="module")
def small_data():
    raw = synthetic_raw_dataset(n_train=1200, n_test=300, seed=3)
    return prepare_dataset(raw, validation_fraction=0.2, seed=0)


def small_config(**overrides) -> TrainingConfig:
    values = {"hidden_layers": [32], "epochs": 4, "batch_size": 32, "learning_rate": 0.01,
              "dropout": 0.1, "lr_schedule": "constant", "seed": 7}
    values.update(overrides)
    return TrainingConfig.from_dict(values)


def metric_values(history: list[EpochMetrics]) -> list[tuple]:
    return [tuple(getattr(m, key) for key in ("epoch", *SEEDED_METRICS)) for m in history]


def test_metric_fields_are_the_epoch_metrics_after_the_epoch_number():
    assert METRIC_FIELDS == ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate",
                             "seconds", "samples_per_second", "gradient_norm", "gradient_norm_max",
                             "dead_unit_fraction")
    metrics = EpochMetrics(1, *range(len(METRIC_FIELDS)))
    assert tuple(metrics.to_dict()) == ("epoch", *METRIC_FIELDS)


def test_fit_learns_the_synthetic_task_and_reports_every_epoch(small_data):
    seen = []
    result = fit(small_config(), small_data, on_epoch=seen.append)
    assert result.outcome is Outcome.COMPLETED
    assert [m.epoch for m in seen] == [1, 2, 3, 4]
    assert seen == result.history
    assert result.best_val_accuracy > 0.9
    assert result.test_accuracy > 0.9
    assert len(result.confusion_matrix) == 10 and all(len(row) == 10 for row in result.confusion_matrix)
    assert sum(map(sum, result.confusion_matrix)) == small_data.x_test.shape[0]
    assert len(result.per_class_accuracy) == 10
    for m in seen:
        assert m.seconds > 0 and m.samples_per_second > 0
        assert 0 <= m.dead_unit_fraction <= 1
        assert m.gradient_norm_max >= m.gradient_norm > 0


def test_same_seed_gives_identical_metrics_and_weights(small_data):
    first = fit(small_config(), small_data)
    second = fit(small_config(), small_data)
    assert metric_values(first.history) == metric_values(second.history)
    np.testing.assert_array_equal(first.network.theta, second.network.theta)


def test_different_seed_gives_different_run(small_data):
    first = fit(small_config(seed=1), small_data)
    second = fit(small_config(seed=2), small_data)
    assert metric_values(first.history) != metric_values(second.history)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_run(small_data, tmp_path, optimizer,
                                                                      schedule):
    config = small_config(optimizer=optimizer, lr_schedule=schedule, warmup_epochs=1,
                          learning_rate=0.05 if optimizer in ("sgd", "momentum") else 0.005)
    uninterrupted = fit(config, small_data)

    checkpoint = tmp_path / "run.npz"
    partial_epochs: list[EpochMetrics] = []
    partial = fit(config, small_data, checkpoint=checkpoint, on_epoch=partial_epochs.append,
                  should_stop=lambda: len(partial_epochs) >= 2)
    assert partial.outcome is Outcome.CANCELLED and partial.epochs_run == 2

    resumed = fit(config, small_data, checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 2
    assert metric_values(resumed.history) == metric_values(uninterrupted.history)
    np.testing.assert_array_equal(resumed.network.theta, uninterrupted.network.theta)
    assert resumed.test_accuracy == uninterrupted.test_accuracy


def test_checkpoint_for_another_config_is_refused(small_data, tmp_path):
    checkpoint = tmp_path / "run.npz"
    fit(small_config(epochs=1), small_data, checkpoint=checkpoint)
    with pytest.raises(CheckpointError, match="different configuration"):
        fit(small_config(epochs=1, learning_rate=0.02), small_data, checkpoint=checkpoint)


def test_checkpoint_network_can_be_loaded_for_inference(small_data, tmp_path):
    checkpoint = tmp_path / "run.npz"
    result = fit(small_config(epochs=2), small_data, checkpoint=checkpoint)
    config, network = load_network_from_checkpoint(checkpoint)
    assert config == small_config(epochs=2)
    np.testing.assert_array_equal(network.theta, result.network.theta)


def test_cancel_stops_within_one_batch(small_data):
    batches_run = []

    def on_batch(epoch, batch, batches):
        batches_run.append((epoch, batch))

    result = fit(small_config(epochs=3), small_data, on_batch=on_batch,
                 should_stop=lambda: len(batches_run) >= 5)
    assert result.outcome is Outcome.CANCELLED
    assert len(batches_run) == 5  # the 6th batch never ran
    assert result.history == []
    assert result.test_accuracy is None


def test_cancel_keeps_the_epochs_already_done(small_data):
    done = []
    result = fit(small_config(epochs=4), small_data, on_epoch=done.append,
                 should_stop=lambda: len(done) >= 2)
    assert result.outcome is Outcome.CANCELLED
    assert [m.epoch for m in result.history] == [1, 2]
    assert result.best_val_accuracy is not None


def test_huge_learning_rate_ends_diverged_instead_of_crashing(small_data):
    result = fit(small_config(optimizer="sgd", learning_rate=10.0, epochs=5, dropout=0.0),
                 small_data)
    assert result.outcome is Outcome.DIVERGED
    assert result.epochs_run < 5
    assert "loss" in result.message or "norm" in result.message
    assert result.test_accuracy is None
    for m in result.history:  # whatever was reported is finite and storable
        assert all(np.isfinite(getattr(m, key)) for key in SEEDED_METRICS)


def test_early_stopping_stops_after_patience_and_restores_best_weights(small_data):
    # A constant, too-high rate on a tiny set plateaus quickly: validation accuracy stops improving.
    config = small_config(epochs=40, early_stopping_patience=2, learning_rate=0.05, dropout=0.0)
    result = fit(config, small_data)
    assert result.outcome is Outcome.EARLY_STOPPED
    assert result.epochs_run == result.best_epoch + 2
    assert "restored the weights of epoch" in result.message
    # The returned network is the best epoch's: its validation accuracy equals the best.
    from training.trainer import evaluate
    _, val_accuracy, _, _ = evaluate(result.network, small_data, small_data.x_val, small_data.y_val)
    assert val_accuracy == pytest.approx(result.best_val_accuracy)


def test_gradient_clipping_bounds_the_update(small_data):
    clipped = fit(small_config(epochs=1, gradient_clip=0.01, optimizer="sgd", learning_rate=0.5),
                  small_data)
    free = fit(small_config(epochs=1, optimizer="sgd", learning_rate=0.5), small_data)
    # Same seed, same batches: with a tiny clip the weights move far less.
    start = fit(small_config(epochs=1, optimizer="sgd", learning_rate=0.0001), small_data).network.theta
    assert np.linalg.norm(clipped.network.theta - start) < np.linalg.norm(free.network.theta - start)


@pytest.mark.slow
def test_real_fashion_mnist_subset_reaches_80_percent_validation_accuracy():
    from training.data import load_fashion_mnist

    config = TrainingConfig.from_dict({"train_size": 10000, "epochs": 3})
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=config.validation_fraction,
                           seed=config.seed, train_size=config.train_size)
    result = fit(config, data)
    assert result.outcome is Outcome.COMPLETED
    assert result.best_val_accuracy >= 0.80
    assert result.test_accuracy >= 0.78
