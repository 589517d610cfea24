"""Specification of training/data/cache.py: sources parsed once, served as memory maps of a .npy cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.training.data.sample_files import csv_text, write_idx_dataset
from training.data import DatasetError, RawDataset, clear_memo, idx, load_fashion_mnist


def test_load_flattens_caches_and_memory_maps(tmp_path, monkeypatch):
    source = tmp_path / "source"
    arrays = write_idx_dataset(source, n_train=20, n_test=10)
    cache = tmp_path / "cache"

    raw = load_fashion_mnist(source, cache_dir=cache, download=False)
    assert isinstance(raw, RawDataset)
    for role in ("train_images", "train_labels", "test_images", "test_labels"):
        array = getattr(raw, role)
        assert isinstance(array, np.memmap), role
        assert array.dtype == np.uint8
        expected = arrays[role].reshape(20 if role.startswith("train") else 10, -1).squeeze()
        np.testing.assert_array_equal(array, expected)
    assert raw.train_images.shape == (20, 784)
    assert not raw.train_images.flags.writeable
    assert len(list(cache.glob("*.npy"))) == 4
    assert not [p for p in cache.iterdir() if p.suffix != ".npy"]  # no temp files left behind

    # Same process, same sources: the very same object, no parsing at all.
    def must_not_parse(path, **kwargs):
        raise AssertionError(f"parsed {path} again")
    monkeypatch.setattr(idx, "parse_idx", must_not_parse)
    assert load_fashion_mnist(source, cache_dir=cache, download=False) is raw
    # New process (memo cleared): served from the .npy cache.
    clear_memo()
    again = load_fashion_mnist(source, cache_dir=cache, download=False)
    assert again is not raw
    np.testing.assert_array_equal(again.train_images, raw.train_images)


def test_cache_is_invalidated_when_a_source_file_changes(tmp_path):
    source, cache = tmp_path / "source", tmp_path / "cache"
    write_idx_dataset(source, seed=0)
    first = np.array(load_fashion_mnist(source, cache_dir=cache, download=False).train_images)

    new_arrays = write_idx_dataset(source, seed=1)  # same sizes, new content
    stat = (source / "train-images-idx3-ubyte.gz").stat()
    os.utime(source / "train-images-idx3-ubyte.gz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    clear_memo()
    second = load_fashion_mnist(source, cache_dir=cache, download=False)
    np.testing.assert_array_equal(second.train_images, new_arrays["train_images"].reshape(20, 784))
    assert not np.array_equal(first, second.train_images)
    assert len(list(cache.glob("*.npy"))) == 4  # the stale entry was removed


def test_damaged_cache_is_rebuilt(tmp_path):
    source, cache = tmp_path / "source", tmp_path / "cache"
    arrays = write_idx_dataset(source)
    load_fashion_mnist(source, cache_dir=cache, download=False)
    for npy in cache.glob("*train_images.npy"):
        npy.write_bytes(b"\x93NUMPY garbage")
    clear_memo()
    raw = load_fashion_mnist(source, cache_dir=cache, download=False)
    np.testing.assert_array_equal(raw.train_images, arrays["train_images"].reshape(20, 784))


def test_cache_dir_defaults_to_tuner_cache_dir(tmp_path, monkeypatch):
    source = tmp_path / "source"
    write_idx_dataset(source)
    monkeypatch.setenv("TUNER_CACHE_DIR", str(tmp_path / "from-env"))
    load_fashion_mnist(source, download=False)
    assert len(list((tmp_path / "from-env").glob("*.npy"))) == 4


def test_load_fashion_mnist_from_csv_is_cached(tmp_path):
    rng = np.random.default_rng(3)
    train_images = rng.integers(0, 256, (30, 784), dtype=np.uint8)
    test_images = rng.integers(0, 256, (10, 784), dtype=np.uint8)
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    train_csv.write_text(csv_text(np.arange(30) % 10, train_images))
    test_csv.write_text(csv_text(np.arange(10) % 10, test_images, header=False))

    raw = load_fashion_mnist(csv_train=train_csv, csv_test=test_csv, cache_dir=tmp_path / "cache")
    assert isinstance(raw.train_images, np.memmap)
    np.testing.assert_array_equal(raw.train_images, train_images)
    np.testing.assert_array_equal(raw.test_images, test_images)
    np.testing.assert_array_equal(raw.train_labels, np.arange(30) % 10)
    assert len(list((tmp_path / "cache").glob("*csv*.npy"))) == 4

    with pytest.raises(DatasetError, match="both"):
        load_fashion_mnist(csv_train=train_csv, cache_dir=tmp_path / "cache")
