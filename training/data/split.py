"""One run's data: `prepare_dataset` splits a RawDataset into train/validation/test.

It picks an optional stratified subset, makes a stratified train/validation split and
computes the normalisation statistics on the training split only. Pixels stay uint8
until `Dataset.normalize` turns a batch into float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.data.raw import CLASS_NAMES, DatasetError, RawDataset

_STATS_BLOCK_ROWS = 2048
# Stream id mixed into the seed for the train_size subset, so the subset and the
# train/validation split draw from independent random streams of the same seed.
_SUBSET_STREAM = 1


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training run's data: uint8 pixels (n, 784), int64 labels (n,), train-only statistics."""

    x_train: np.ndarray  # uint8 (n_train, 784)
    y_train: np.ndarray  # int64 (n_train,)
    x_val: np.ndarray    # uint8 (n_val, 784)
    y_val: np.ndarray    # int64 (n_val,)
    x_test: np.ndarray   # uint8 (n_test, 784)
    y_test: np.ndarray   # int64 (n_test,)
    mean: float          # pixel mean of x_train, 0-255 scale
    std: float           # pixel standard deviation of x_train, 0-255 scale (1.0 if the pixels are constant)
    class_names: tuple[str, ...] = CLASS_NAMES

    def normalize(self, x_uint8: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 ``(x - mean) / std`` of a uint8 batch (any shape), into `out` if given.

        Computed in float32 throughout: no float64 temporaries.
        """
        if out is None:
            out = np.empty(x_uint8.shape, dtype=np.float32)
        elif out.dtype != np.float32 or out.shape != x_uint8.shape:
            raise ValueError(f"out must be float32 of shape {x_uint8.shape}, got {out.dtype} {out.shape}")
        np.subtract(x_uint8, np.float32(self.mean), out=out, dtype=np.float32)
        np.multiply(out, np.float32(1.0 / self.std), out=out)
        return out


def stratified_split(labels: np.ndarray, validation_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train_indices, val_indices), both int64 and sorted ascending.

    Each class contributes round-half-up(count * validation_fraction) of its samples,
    drawn with ``np.random.default_rng(seed)``, to the validation set; the rest go to
    training. Same labels and seed give the same split.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DatasetError(f"labels must be one-dimensional, got shape {labels.shape}")
    if not 0.0 <= validation_fraction < 1.0:
        raise DatasetError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    by_class = np.argsort(labels, kind="stable")
    _, starts, counts = np.unique(labels[by_class], return_index=True, return_counts=True)
    val_parts = [np.empty(0, dtype=np.int64)]
    for start, count in zip(starts, counts, strict=True):
        n_val = int(math.floor(count * validation_fraction + 0.5))
        val_parts.append(rng.permutation(by_class[start:start + count])[:n_val])
    val_indices = np.sort(np.concatenate(val_parts)).astype(np.int64)
    in_train = np.ones(len(labels), dtype=bool)
    in_train[val_indices] = False
    return np.flatnonzero(in_train).astype(np.int64), val_indices


def _stratified_subset(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted int64 indices of exactly `size` samples, each class in proportion to its count.

    Per-class quotas are floored, then the leftover places go to the classes with the
    largest fractional parts (largest-remainder method), so the total is exact.
    """
    by_class = np.argsort(labels, kind="stable")
    _, starts, counts = np.unique(labels[by_class], return_index=True, return_counts=True)
    ideal = counts * (size / len(labels))
    quotas = np.floor(ideal).astype(np.int64)
    leftover = size - int(quotas.sum())
    quotas[np.argsort(-(ideal - quotas), kind="stable")[:leftover]] += 1
    parts = [rng.permutation(by_class[start:start + count])[:quota]
             for start, count, quota in zip(starts, counts, quotas, strict=True)]
    return np.sort(np.concatenate(parts)).astype(np.int64)


def pixel_mean_std(images: np.ndarray) -> tuple[float, float]:
    """Exact mean and (population) std of all pixels of uint8 `images` (n, ...).

    Uses integer sums of x and x² over blocks of rows, so no float64 copy of the data exists.
    """
    rows = images.reshape(len(images), -1)
    n = rows.size
    total = int(rows.sum(dtype=np.uint64))
    total_sq = 0
    for start in range(0, len(rows), _STATS_BLOCK_ROWS):
        block = rows[start:start + _STATS_BLOCK_ROWS].astype(np.uint32)
        np.multiply(block, block, out=block)
        total_sq += int(block.sum(dtype=np.uint64))
    mean = total / n
    variance = (n * total_sq - total * total) / (n * n)  # numerator is an exact integer
    return mean, math.sqrt(variance)


def prepare_dataset(raw: RawDataset, *, validation_fraction: float, seed: int,
                    train_size: int | None = None) -> Dataset:
    """Split `raw` into train/validation/test for one run.

    `train_size`, when given, first draws a stratified subset of that many training
    images (train + validation together, e.g. 10000 with fraction 0.1 -> 9000 + 1000);
    the split of that pool is `stratified_split(pool_labels, validation_fraction, seed)`.
    The test set is always all of ``raw.test_*``. Mean and std come from x_train only.
    x_train/x_val are in-memory uint8 copies; x_test stays a view of raw's memory map.
    """
    n_available = len(raw.train_labels)
    if train_size is None:
        pool = np.arange(n_available, dtype=np.int64)
    else:
        if train_size > n_available:
            raise DatasetError(
                f"train_size={train_size} is larger than the {n_available} training images available"
            )
        if train_size < 1:
            raise DatasetError(f"train_size must be at least 1, got {train_size}")
        pool = _stratified_subset(np.asarray(raw.train_labels), train_size,
                                  np.random.default_rng([seed, _SUBSET_STREAM]))
    pool_labels = np.asarray(raw.train_labels)[pool]
    train_in_pool, val_in_pool = stratified_split(pool_labels, validation_fraction, seed)
    train_indices, val_indices = pool[train_in_pool], pool[val_in_pool]
    if len(train_indices) == 0:
        raise DatasetError("no training images left after the validation split")

    # Indices are sorted, so fancy-indexing the memory map reads it sequentially.
    # np.asarray drops the np.memmap subclass: these are plain in-memory copies.
    x_train = np.asarray(raw.train_images[train_indices])
    mean, std = pixel_mean_std(x_train)
    return Dataset(
        x_train=x_train,
        y_train=np.asarray(raw.train_labels[train_indices]).astype(np.int64),
        x_val=np.asarray(raw.train_images[val_indices]),
        y_val=np.asarray(raw.train_labels[val_indices]).astype(np.int64),
        x_test=raw.test_images,
        y_test=np.asarray(raw.test_labels).astype(np.int64),
        mean=mean,
        std=std if std > 0 else 1.0,  # constant pixels: avoid dividing by zero
    )
