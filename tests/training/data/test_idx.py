"""Specification of training/data/idx.py: IDX files, alone (`parse_idx`) and as a set of four."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tests.training.data.sample_files import idx_bytes, write_idx, write_idx_dataset
from training.data import DatasetError, load_fashion_mnist, parse_idx


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"])
def test_parse_idx_reads_gzip_and_plain_files(tmp_path, name):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    result = parse_idx(write_idx(tmp_path / name, images))
    assert result.dtype == np.uint8
    assert result.shape == (3, 28, 28)
    np.testing.assert_array_equal(result, images)


def test_parse_idx_reads_labels(tmp_path):
    labels = np.array([9, 0, 3, 3], dtype=np.uint8)
    result = parse_idx(write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels))
    assert result.shape == (4,)
    np.testing.assert_array_equal(result, labels)


def test_parse_idx_rejects_bad_magic_naming_the_file(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8),
                     magic=bytes([1, 2, 0x08, 1]))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz.*magic"):
        parse_idx(path)


def test_parse_idx_rejects_non_uint8_type_code(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(5, np.uint8), magic=bytes([0, 0, 0x0D, 1]))
    with pytest.raises(DatasetError, match=r"labels-idx1-ubyte.*type code 0x0d"):
        parse_idx(path)


def test_parse_idx_rejects_unexpected_number_of_dimensions(tmp_path):
    # An idx3 file name whose header claims a 1-D array.
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*1 dimensions, expected 3"):
        parse_idx(path)


def test_parse_idx_reports_truncated_payload(tmp_path):
    full = idx_bytes(np.zeros((60000, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(full[:16 + 1000]))
    with pytest.raises(DatasetError) as info:
        parse_idx(path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "truncated" in message
    assert "47040000" in message and "found 1000" in message


def test_parse_idx_reports_truncated_header(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"\x00\x00")
    with pytest.raises(DatasetError, match="truncated"):
        parse_idx(path)


def test_parse_idx_rejects_trailing_bytes(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(5, np.uint8)) + b"garbage")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.*7 unexpected trailing bytes"):
        parse_idx(path)


def test_parse_idx_reports_corrupt_gzip(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz.*gzip"):
        parse_idx(path)


def test_parse_idx_reports_gzip_cut_short(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(5000, np.uint8)))[:-20])
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz"):
        parse_idx(path)


def test_parse_idx_reports_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope-idx1-ubyte.*not found"):
        parse_idx(tmp_path / "nope-idx1-ubyte")


def test_load_rejects_image_label_count_mismatch(tmp_path):
    source = tmp_path / "source"
    write_idx_dataset(source, n_train=10, n_train_labels=9)
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: 9 labels.*10 images"):
        load_fashion_mnist(source, cache_dir=tmp_path / "cache", download=False)


def test_load_rejects_wrong_image_size(tmp_path):
    source = tmp_path / "source"
    write_idx_dataset(source)
    write_idx(source / "t10k-images-idx3-ubyte.gz", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: expected 28x28 images, found 32x32"):
        load_fashion_mnist(source, cache_dir=tmp_path / "cache", download=False)


def test_load_rejects_labels_outside_the_ten_classes(tmp_path):
    source = tmp_path / "source"
    write_idx_dataset(source)
    write_idx(source / "t10k-labels-idx1-ubyte.gz", np.full(10, 10, np.uint8))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz: label 10"):
        load_fashion_mnist(source, cache_dir=tmp_path / "cache", download=False)
