"""Specification of training/data/csv.py: the Kaggle CSV layout, with errors naming the line."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.data.sample_files import csv_text
from training.data import DatasetError, load_csv
from training.data import csv as csv_layout


@pytest.mark.parametrize("header", [True, False])
def test_load_csv_reads_rows_with_or_without_header(tmp_path, header):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 784), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1, 2, 5], dtype=np.uint8)
    path = tmp_path / "fashion-mnist_train.csv"
    path.write_text(csv_text(labels, images, header=header))

    loaded_images, loaded_labels = load_csv(path)
    assert loaded_images.dtype == np.uint8 and loaded_labels.dtype == np.uint8
    assert loaded_images.shape == (7, 784) and loaded_labels.shape == (7,)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_csv_handles_more_rows_than_one_parsing_block(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_layout, "_CSV_BLOCK_LINES", 4)
    images = np.random.default_rng(2).integers(0, 256, (11, 784), dtype=np.uint8)
    labels = (np.arange(11) % 10).astype(np.uint8)
    path = tmp_path / "mnist.csv"
    path.write_text(csv_text(labels, images).replace("\n", "\r\n", 3) + "\n\n")
    loaded_images, loaded_labels = load_csv(path)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_csv_names_the_line_with_the_wrong_column_count(tmp_path):
    images = np.zeros((4, 784), dtype=np.uint8)
    lines = csv_text([1, 2, 3, 4], images).splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # data row 3 is file line 4 (after the header)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: line 4: expected 785 .*found 784"):
        load_csv(path)


def test_load_csv_rejects_out_of_range_pixel(tmp_path):
    images = np.zeros((3, 784), dtype=np.int64)
    images[1, 9] = 256
    path = tmp_path / "bad.csv"
    path.write_text(csv_text([0, 1, 2], images, header=False))
    with pytest.raises(DatasetError, match=r"bad\.csv: line 2: pixel10=256 is out of range 0-255"):
        load_csv(path)


def test_load_csv_does_not_mistake_a_bad_first_row_for_a_header(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(csv_text([-1, 2], np.zeros((2, 784), dtype=np.uint8), header=False))
    with pytest.raises(DatasetError, match=r"line 1: label"):
        load_csv(path)


def test_load_csv_rejects_out_of_range_label(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(csv_text([0, 10], np.zeros((2, 784), dtype=np.uint8)))
    with pytest.raises(DatasetError, match=r"line 3: label=10 is out of range 0-9"):
        load_csv(path)


@pytest.mark.parametrize("value", ["1.5", "x", "", "-1", "70000"])
def test_load_csv_rejects_non_integer_or_negative_values(tmp_path, value):
    text = csv_text([0, 1], np.zeros((2, 784), dtype=np.uint8), header=False)
    lines = text.splitlines()
    fields = lines[1].split(",")
    fields[5] = value
    lines[1] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match=r"bad\.csv: line 2: pixel5"):
        load_csv(path)


CSV_HEADER = "label," + ",".join(f"pixel{i}" for i in range(1, 785))


@pytest.mark.parametrize("content", ["", "\n\n", CSV_HEADER + "\n"])
def test_load_csv_rejects_files_without_data(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=r"empty\.csv"):
        load_csv(path)
