"""Specification of training/data/synthetic.py: the learnable stand-in dataset."""

from __future__ import annotations

import numpy as np

from training.data import synthetic_raw_dataset


def test_synthetic_raw_dataset_shapes_and_balance():
    raw = synthetic_raw_dataset(n_train=600, n_test=100, seed=0)
    assert raw.train_images.shape == (600, 784) and raw.train_images.dtype == np.uint8
    assert raw.test_images.shape == (100, 784) and raw.test_labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(raw.train_labels, minlength=10), np.full(10, 60))
    # Learnable: the nearest class mean classifies the test set almost perfectly.
    means = np.stack([raw.train_images[raw.train_labels == c].mean(axis=0) for c in range(10)])
    distances = ((raw.test_images[:, None, :].astype(np.float32) - means[None]) ** 2).sum(axis=2)
    assert (distances.argmin(axis=1) == raw.test_labels).mean() > 0.9
