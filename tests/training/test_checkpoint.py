"""The trainer's checkpoint interface: a path (a local file replaced atomically) or any object with
save(bytes) / load() -> bytes | None, which is how the server keeps checkpoints in its storage."""

from __future__ import annotations

import os

import numpy as np
import pytest

from training.checkpoint import CheckpointStore, FileCheckpoint, checkpoint_store
from training.config import TrainingConfig
from training.data import prepare_dataset, synthetic_raw_dataset
from training.trainer import CheckpointError, EpochMetrics, Outcome, fit


@pytest.fixture(scope="module")
def small_data():
    return prepare_dataset(synthetic_raw_dataset(n_train=800, n_test=200, seed=3), validation_fraction=0.2, seed=0)


CONFIG = TrainingConfig.from_dict({"hidden_layers": [16], "epochs": 4, "batch_size": 32, "learning_rate": 0.01,
                                   "dropout": 0.0, "lr_schedule": "constant", "seed": 5})


class MemoryCheckpoint:
    """An object store in a list: every save is a new complete version; load returns the last."""

    def __init__(self):
        self.versions: list[bytes] = []

    def save(self, data: bytes) -> None:
        self.versions.append(bytes(data))

    def load(self) -> bytes | None:
        return self.versions[-1] if self.versions else None


def test_a_store_object_checkpoints_every_epoch_and_resumes_like_a_file(small_data):
    uninterrupted = fit(CONFIG, small_data)
    store = MemoryCheckpoint()
    assert isinstance(store, CheckpointStore)
    seen: list[EpochMetrics] = []
    partial = fit(CONFIG, small_data, checkpoint=store, on_epoch=seen.append, should_stop=lambda: len(seen) >= 2)
    assert partial.outcome is Outcome.CANCELLED and len(store.versions) == 2

    resumed = fit(CONFIG, small_data, checkpoint=store)
    assert resumed.resumed_from_epoch == 2 and len(store.versions) == 4
    np.testing.assert_array_equal(resumed.network.theta, uninterrupted.network.theta)
    assert resumed.test_accuracy == uninterrupted.test_accuracy


def test_an_empty_store_starts_from_scratch_and_a_foreign_checkpoint_is_refused(small_data):
    store = MemoryCheckpoint()
    assert fit(CONFIG, small_data, checkpoint=store).resumed_from_epoch == 0
    other = TrainingConfig.from_dict({**CONFIG.to_dict(), "learning_rate": 0.02})
    with pytest.raises(CheckpointError, match="different configuration"):
        fit(other, small_data, checkpoint=store)
    store.versions.append(b"not an npz")
    with pytest.raises(CheckpointError, match="unreadable"):
        fit(CONFIG, small_data, checkpoint=store)


def test_a_file_checkpoint_is_replaced_whole_and_a_failed_write_keeps_the_previous_one(tmp_path, monkeypatch):
    checkpoint = FileCheckpoint(tmp_path / "sub" / "run.npz")
    assert checkpoint.load() is None
    checkpoint.save(b"one" * 100)
    checkpoint.save(b"two" * 200)
    assert checkpoint.load() == b"two" * 200

    def dying_fsync(fd):
        raise OSError("disk gone mid-write")

    monkeypatch.setattr(os, "fsync", dying_fsync)
    with pytest.raises(OSError):
        checkpoint.save(b"torn")
    assert checkpoint.load() == b"two" * 200
    assert os.listdir(tmp_path / "sub") == ["run.npz"]  # no temporary left behind


def test_checkpoint_store_accepts_paths_stores_and_nothing():
    assert checkpoint_store(None) is None and checkpoint_store("") is None
    assert isinstance(checkpoint_store("x.npz"), FileCheckpoint)
    store = MemoryCheckpoint()
    assert checkpoint_store(store) is store
    with pytest.raises(TypeError):
        checkpoint_store(42)
