"""Specification of training/data/split.py: stratified split, subset and train-only normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from training.data import (
    CLASS_NAMES,
    DatasetError,
    RawDataset,
    prepare_dataset,
    stratified_split,
    synthetic_raw_dataset,
)


def unbalanced_labels() -> np.ndarray:
    counts = [500, 37, 120, 9, 250, 1, 60, 333, 80, 45]
    return np.random.default_rng(7).permutation(np.repeat(np.arange(10), counts)).astype(np.uint8)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_stratified_split_is_a_stratified_partition(fraction):
    labels = unbalanced_labels()
    train, val = stratified_split(labels, fraction, seed=3)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # documented: sorted
    counts = np.bincount(labels, minlength=10)
    val_counts = np.bincount(labels[val], minlength=10)
    assert np.all(np.abs(val_counts - counts * fraction) <= 1)
    np.testing.assert_array_equal(val_counts, np.floor(counts * fraction + 0.5))


def test_stratified_split_is_deterministic_per_seed():
    labels = unbalanced_labels()
    first_train, first_val = stratified_split(labels, 0.2, seed=11)
    again_train, again_val = stratified_split(labels, 0.2, seed=11)
    np.testing.assert_array_equal(first_train, again_train)
    np.testing.assert_array_equal(first_val, again_val)
    _, other_val = stratified_split(labels, 0.2, seed=12)
    assert not np.array_equal(first_val, other_val)


def test_stratified_split_rejects_bad_fraction():
    with pytest.raises(DatasetError, match="validation_fraction"):
        stratified_split(np.zeros(10, np.uint8), 1.0, seed=0)


def test_normalisation_statistics_come_from_the_training_split_only():
    # Class 0 images are all 200, all others 0; validation takes a class-stratified 50%,
    # so pooling val with train would not change the mean -- but test images are all 255
    # and val images of class 1 are made 255 below, which would if included.
    n = 100
    labels = (np.arange(n) % 2).astype(np.uint8)
    images = np.where(labels[:, None] == 0, 200, 0).astype(np.uint8) * np.ones((1, 784), np.uint8)
    train_idx, val_idx = stratified_split(labels, 0.5, seed=5)
    images[val_idx[labels[val_idx] == 1]] = 255
    raw = RawDataset(images, labels, np.full((10, 784), 255, np.uint8), (np.arange(10) % 2).astype(np.uint8))

    dataset = prepare_dataset(raw, validation_fraction=0.5, seed=5)
    np.testing.assert_array_equal(dataset.x_train, images[train_idx])
    assert dataset.mean == pytest.approx(100.0)  # half 200, half 0
    assert dataset.std == pytest.approx(100.0)
    assert dataset.x_val.max() == 255  # the val rows exist; they were just not counted


def test_prepare_with_train_size_takes_a_stratified_subset():
    raw = synthetic_raw_dataset(n_train=2000, n_test=50, seed=1)
    dataset = prepare_dataset(raw, validation_fraction=0.1, seed=4, train_size=1000)
    assert len(dataset.x_train) == 900 and len(dataset.x_val) == 100
    assert len(dataset.y_train) == 900 and len(dataset.y_val) == 100
    np.testing.assert_array_equal(np.bincount(dataset.y_val, minlength=10), np.full(10, 10))
    np.testing.assert_array_equal(np.bincount(dataset.y_train, minlength=10), np.full(10, 90))
    assert dataset.x_test.shape == (50, 784)  # test set is never subsampled
    # The rows are real rows of the raw training set with matching labels.
    rows = {row.tobytes(): label for row, label in zip(raw.train_images, raw.train_labels, strict=True)}
    assert all(rows[row.tobytes()] == label
               for row, label in zip(dataset.x_train, dataset.y_train, strict=True))


def test_prepare_train_size_total_is_exact_for_unbalanced_classes():
    labels = unbalanced_labels()
    raw = RawDataset(np.zeros((len(labels), 784), np.uint8), labels,
                     np.zeros((3, 784), np.uint8), np.zeros(3, np.uint8))
    dataset = prepare_dataset(raw, validation_fraction=0.2, seed=0, train_size=517)
    assert len(dataset.y_train) + len(dataset.y_val) == 517


def test_prepare_is_deterministic_and_seed_dependent():
    raw = synthetic_raw_dataset(n_train=500, n_test=20)
    first = prepare_dataset(raw, validation_fraction=0.2, seed=1, train_size=300)
    again = prepare_dataset(raw, validation_fraction=0.2, seed=1, train_size=300)
    other = prepare_dataset(raw, validation_fraction=0.2, seed=2, train_size=300)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.x_train, other.x_train)


def test_prepare_rejects_train_size_larger_than_available():
    raw = synthetic_raw_dataset(n_train=100, n_test=10)
    with pytest.raises(DatasetError, match="train_size=101.*100"):
        prepare_dataset(raw, validation_fraction=0.1, seed=0, train_size=101)


def test_normalize_gives_float32_standardised_training_pixels():
    dataset = prepare_dataset(synthetic_raw_dataset(), validation_fraction=0.1, seed=0)
    assert dataset.class_names == CLASS_NAMES
    normalised = dataset.normalize(dataset.x_train)
    assert normalised.dtype == np.float32 and normalised.shape == dataset.x_train.shape
    assert abs(float(normalised.mean(dtype=np.float64))) < 1e-4
    assert float(normalised.std(dtype=np.float64)) == pytest.approx(1.0, abs=1e-4)

    out = np.empty((5, 784), np.float32)
    result = dataset.normalize(dataset.x_val[:5], out=out)
    assert result is out
    expected = (dataset.x_val[:5].astype(np.float64) - dataset.mean) / dataset.std
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
