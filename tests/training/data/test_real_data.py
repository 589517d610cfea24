"""The real Fashion-MNIST files end to end (skipped when the shared copy is absent)."""

from __future__ import annotations

import hashlib
import struct
import time

import numpy as np
import pytest

from tests.training.data.sample_files import SHARED_DIR
from training.data import CLASS_NAMES, IDX_FILES, clear_memo, idx, load_fashion_mnist, prepare_dataset


def read_uncompressed_checksums() -> dict[str, str]:
    lines = (SHARED_DIR / "SHA256SUMS.uncompressed").read_text().splitlines()
    return {line.split()[1]: line.split()[0] for line in lines if line.strip()}


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    """The real files, parsed once into a private cache: (raw, cache_dir)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent")
    cache = tmp_path_factory.mktemp("real-cache")
    clear_memo()
    return load_fashion_mnist(SHARED_DIR, cache_dir=cache, download=False), cache


def test_real_data_shapes_labels_and_mmap(real_data):
    raw, _ = real_data
    assert raw.train_images.shape == (60000, 784) and raw.test_images.shape == (10000, 784)
    assert raw.train_labels.shape == (60000,) and raw.test_labels.shape == (10000,)
    for array in (raw.train_images, raw.train_labels, raw.test_images, raw.test_labels):
        assert isinstance(array, np.memmap)
        assert array.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(raw.train_labels, minlength=10), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(raw.test_labels, minlength=10), np.full(10, 1000))
    assert len(CLASS_NAMES) == 10 and CLASS_NAMES[0] == "T-shirt/top" and CLASS_NAMES[9] == "Ankle boot"


def test_real_data_matches_the_published_uncompressed_checksums(real_data):
    raw, _ = real_data
    expected = read_uncompressed_checksums()
    for role, name in IDX_FILES.items():
        array = getattr(raw, role)
        shape = (len(array), 28, 28) if array.ndim == 2 else array.shape
        header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
        assert hashlib.sha256(header + array.tobytes()).hexdigest() == expected[name], name


def test_real_data_warm_load_comes_from_the_cache(real_data, monkeypatch):
    raw, cache = real_data
    clear_memo()

    def must_not_parse(path, **kwargs):
        raise AssertionError(f"parsed {path} although the cache is warm")
    monkeypatch.setattr(idx, "parse_idx", must_not_parse)
    started = time.perf_counter()
    warm = load_fashion_mnist(SHARED_DIR, cache_dir=cache, download=False)
    elapsed = time.perf_counter() - started
    assert isinstance(warm.train_images, np.memmap)
    np.testing.assert_array_equal(warm.test_labels, raw.test_labels)
    assert elapsed < 0.25  # typically a few ms; generous for loaded CI machines


def test_real_data_full_prepare(real_data):
    raw, _ = real_data
    dataset = prepare_dataset(raw, validation_fraction=0.1, seed=0)
    assert dataset.x_train.shape == (54000, 784) and dataset.x_val.shape == (6000, 784)
    assert dataset.x_test.shape == (10000, 784)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(dataset.y_val, minlength=10), np.full(10, 600))
    # Reference statistics from a pixel-value histogram (a different method from the module's).
    histogram = sum(np.bincount(block.ravel(), minlength=256)
                    for block in np.array_split(dataset.x_train, 20))
    values = np.arange(256, dtype=np.float64)
    mean = (histogram * values).sum() / histogram.sum()
    std = np.sqrt((histogram * (values - mean) ** 2).sum() / histogram.sum())
    assert dataset.mean == pytest.approx(mean, rel=1e-12)
    assert dataset.std == pytest.approx(std, rel=1e-12)
    assert 60 < dataset.mean < 80 and 80 < dataset.std < 100  # the well-known Fashion-MNIST values
