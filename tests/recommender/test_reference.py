"""Specification of reference.py: the shipped reference curve, its interpolation and clamping, and the
number of training images a config gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.recommender import reference as ref
from experiments.recommender.reference import reference_accuracy, training_images
from training.config import TrainingConfig
from training.data import RawDataset, prepare_dataset


@pytest.mark.parametrize("name", ["TEST_ACCURACY", "TEST_SPREAD", "BEST_VAL_ACCURACY", "BEST_VAL_SPREAD"])
def test_the_measured_tables_cover_the_grid(name):
    table = getattr(ref, name)
    assert len(table) == len(ref.TRAIN_IMAGES)
    assert all(len(row) == len(ref.EPOCHS) for row in table)
    assert all(0.0 <= value <= 1.0 for row in table for value in row)


def test_the_grid_is_what_the_bench_measures():
    assert ref.TRAIN_IMAGES == (900, 1800, 4500, 9000, 18000, 54000)  # train_size 1 000 ... all, minus 10 %
    assert ref.EPOCHS == (1, 2, 3, 5, 8, 12, 20, 30)
    assert len(ref.SEEDS) >= 2


@pytest.mark.parametrize("table", [ref.REFERENCE_TEST, ref.REFERENCE_BEST_VAL])
def test_the_reference_never_falls_with_more_images_or_epochs(table):
    for row in table:
        assert list(row) == sorted(row)
    for column in zip(*table, strict=True):
        assert list(column) == sorted(column)


def test_the_envelope_only_lifts_dips_of_the_measured_means():
    for measured, envelope in ((ref.TEST_ACCURACY, ref.REFERENCE_TEST),
                               (ref.BEST_VAL_ACCURACY, ref.REFERENCE_BEST_VAL)):
        for m_row, e_row in zip(measured, envelope, strict=True):
            for m, e in zip(m_row, e_row, strict=True):
                assert e >= m
                assert e - m < 0.02  # a dip of noise, not a different curve
    assert ref.REFERENCE_TEST[0][0] == ref.TEST_ACCURACY[0][0]


def test_the_curve_has_the_expected_shape():
    # much more from data than from the last epochs; full data, long runs: about 90 %
    assert 0.88 <= reference_accuracy(54000, 30) <= 0.91
    assert reference_accuracy(1800, 30) < reference_accuracy(54000, 30) - 0.03
    assert reference_accuracy(900, 1) < reference_accuracy(900, 30)


def test_reference_at_the_measured_points_is_the_table():
    for i, images in enumerate(ref.TRAIN_IMAGES):
        for j, epochs in enumerate(ref.EPOCHS):
            assert reference_accuracy(images, epochs) == pytest.approx(ref.REFERENCE_TEST[i][j])
            assert reference_accuracy(images, epochs, metric="best_val") == pytest.approx(
                ref.REFERENCE_BEST_VAL[i][j])


def test_interpolation_is_linear_in_log_images_and_log_epochs():
    t = ref.REFERENCE_TEST
    # the geometric mean of 1 800 and 4 500 images is halfway between them in log(images)
    between = math.sqrt(1800 * 4500)
    assert reference_accuracy(round(between), 5) == pytest.approx((t[1][3] + t[2][3]) / 2, abs=1e-4)
    # 4 epochs lies between the grid's 3 and 5, weighted by log distance
    w = (math.log(4) - math.log(3)) / (math.log(5) - math.log(3))
    assert reference_accuracy(9000, 4) == pytest.approx(t[3][2] * (1 - w) + t[3][3] * w)
    # bilinear: both axes between grid points
    wi = (math.log(6000) - math.log(4500)) / (math.log(9000) - math.log(4500))
    wj = (math.log(10) - math.log(8)) / (math.log(12) - math.log(8))
    expected = ((t[2][4] * (1 - wj) + t[2][5] * wj) * (1 - wi) + (t[3][4] * (1 - wj) + t[3][5] * wj) * wi)
    assert reference_accuracy(6000, 10) == pytest.approx(expected)
    low, high = sorted((t[2][4], t[3][5]))
    assert low <= reference_accuracy(6000, 10) <= high


def test_clamped_at_the_edges_of_the_table():
    t = ref.REFERENCE_TEST
    assert reference_accuracy(90, 1) == t[0][0]
    assert reference_accuracy(0, 0) == t[0][0]
    assert reference_accuracy(54000, 200) == t[-1][-1]
    assert reference_accuracy(10**9, 30) == t[-1][-1]
    assert reference_accuracy(1800, 60) == t[1][-1]
    assert reference_accuracy(500, 5) == t[0][3]


def test_spread_and_bands():
    assert ref.spread(1800, 8) == pytest.approx(ref.TEST_SPREAD[1][4])
    assert ref.spread(100, 1) == ref.TEST_SPREAD[0][0]
    assert ref.spread(60000, 100, metric="best_val") == ref.BEST_VAL_SPREAD[-1][-1]
    quiet = ref.bands(54000, 20)  # seed spread below the excellent margin: the margins as they are
    assert ref.TEST_SPREAD[-1][-2] <= ref.EXCELLENT_MARGIN
    assert quiet == {"excellent": ref.EXCELLENT_MARGIN, "good": ref.GOOD_MARGIN, "fair": ref.FAIR_MARGIN,
                     "widened": 0.0}
    noisy = ref.bands(900, 1)  # one epoch on 900 images: seeds scatter 3 points; all bands widen by the excess
    widened = ref.TEST_SPREAD[0][0] - ref.EXCELLENT_MARGIN
    assert widened > 0 and noisy["widened"] == pytest.approx(widened)
    assert noisy["good"] == pytest.approx(ref.GOOD_MARGIN + widened)
    assert noisy["excellent"] < noisy["good"] < noisy["fair"]


@pytest.mark.parametrize("train_size, fraction, expected", [
    (None, 0.1, 54000), (2000, 0.1, 1800), (1000, 0.1, 900), (60000, 0.1, 54000), (10000, 0.2, 8000),
    (1234, 0.1, 1114),  # classes of 124 x 4 and 123 x 6: 12 validation images each
    (100, 0.05, 90),  # 10 per class: round-half-up(0.5) = 1 each
])
def test_training_images_from_the_config(train_size, fraction, expected):
    cfg = TrainingConfig.from_dict({"train_size": train_size, "validation_fraction": fraction}).to_dict()
    assert training_images(cfg) == expected


def test_training_images_is_what_prepare_dataset_gives():
    # Fashion-MNIST's training set is balanced (6 000 images a class); the pixels do not matter here.
    labels = np.tile(np.arange(10, dtype=np.uint8), 6000)
    raw = RawDataset(train_images=np.zeros((60000, 1), np.uint8), train_labels=labels,
                     test_images=np.zeros((10, 1), np.uint8), test_labels=np.arange(10, dtype=np.uint8))
    for train_size in (100, 101, 999, 1000, 1234, 2005, 4999, 15015, 59999, None):
        for fraction in (0.05, 0.1, 0.15, 0.25, 0.33, 0.5):
            data = prepare_dataset(raw, validation_fraction=fraction, seed=3, train_size=train_size)
            cfg = {"train_size": train_size, "validation_fraction": fraction}
            assert training_images(cfg) == len(data.x_train), (train_size, fraction)


def test_reference_imports_only_the_standard_library():
    with open(ref.__file__) as source:
        imports = [line.split()[1] for line in source if line.startswith(("import ", "from "))]
    assert set(imports) <= {"__future__", "math", "bisect"}
