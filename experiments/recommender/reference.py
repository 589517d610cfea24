"""What a sound MLP reaches on N training images in E epochs: the measured reference curve a run's
accuracy is rated against (`rules/outcome.py`), so a quick run on 2 000 images is judged by what
2 000 images can give, not by full-data figures.

Measured by `python bench/reference_curve.py --write` (which rewrites the block between the
markers below): this project's trainer with the default config (adam 1e-3, [256, 128], relu,
dropout 0.2, batch 128, cosine decay over the run, validation fraction 0.1) on Fashion-MNIST
subsets of 1 000, 2 000, 5 000, 10 000, 20 000 and all 60 000 training images (train_size, i.e.
train + validation, so 900 ... 54 000 images trained on), one cosine run per epoch count E and seed
(a cosine run of E epochs anneals to zero at E, so it reaches more in E epochs than epoch E of a
longer run; the reference is what the default run of that length reaches), test accuracy at the
best validation epoch as the trainer reports it, and the best validation accuracy. MEASURED,
MACHINE and SEEDS below say when, where and over which seeds.

The tables are rated against through their monotone envelope (`REFERENCE_TEST`,
`REFERENCE_BEST_VAL`): the best mean reached with at most that many images and epochs. More data
or more epochs can always do at least as well (stop earlier, ignore images), so a dip in the
measured means (seed noise, a little overfitting at 30 epochs on 900 images) does not lower the bar.

Pure Python: no Django, no NumPy needed.
"""

from __future__ import annotations

import math
from bisect import bisect_right

FULL_TRAINING_SET = 60_000  # Fashion-MNIST training images (train + validation when train_size is None)
CLASSES = 10  # balanced: 6 000 training images per class

# --- rating margins (how far below the reference, as fractions: 0.005 = 0.5 points) ---------------
# From the measured seed spread (max - min over 3 seeds of the same config, size and epochs; TEST_SPREAD):
# at 4 500 images and more, or 3 epochs and more, it is at most about 1 point and usually 0.1-0.5, so
# - excellent: at most 0.5 points below the reference (or above it): the default config's own result,
#   up to seed noise;
# - good: at most 2 points below: 2-4x the seed noise, so really below the reference, yet close (on all
#   the data, 87.9 % against 89.9 % after 30 epochs: what the old absolute scale called good);
# - fair: at most 6 points below: it learns, but something is clearly off (the old absolute fair band
#   was also 6 points wide, 80-86 %); poor: more than 6 points below.
# Where the measured spread is larger than EXCELLENT_MARGIN (1-2 epoch runs on <= 1 800 images: up to
# 3.7 points; the best validation accuracy measured on 90-180 images: up to 10), every band is widened
# by the excess, so an unlucky seed of a sound config is not rated down for noise (`bands`).
EXCELLENT_MARGIN = 0.005
GOOD_MARGIN = 0.02
FAIR_MARGIN = 0.06

# --- measured: begin (written by `python bench/reference_curve.py --write`; do not edit) ---
MEASURED = '2026-12-08'
MACHINE = 'x86_64, 2 cores, Python 3.11.7, 144 runs in 251 s'
SEEDS = (0, 1, 2)
TRAIN_IMAGES = (900, 1800, 4500, 9000, 18000, 54000)
EPOCHS = (1, 2, 3, 5, 8, 12, 20, 30)
# Test accuracy (fraction, at the best validation epoch) of the default config, mean over SEEDS,
# per TRAIN_IMAGES row x EPOCHS column; *_SPREAD: max - min over the seeds.
TEST_ACCURACY = (
    (0.6343, 0.6701, 0.7055, 0.7384, 0.7570, 0.7742, 0.7891, 0.7985),  # 900 images
    (0.6869, 0.7344, 0.7566, 0.7795, 0.7959, 0.8070, 0.8203, 0.8248),  # 1800 images
    (0.7520, 0.7883, 0.8055, 0.8230, 0.8334, 0.8422, 0.8494, 0.8522),  # 4500 images
    (0.7863, 0.8158, 0.8275, 0.8408, 0.8486, 0.8564, 0.8618, 0.8661),  # 9000 images
    (0.8164, 0.8376, 0.8463, 0.8565, 0.8656, 0.8719, 0.8765, 0.8781),  # 18000 images
    (0.8477, 0.8626, 0.8717, 0.8788, 0.8860, 0.8916, 0.8974, 0.8992),  # 54000 images
)
TEST_SPREAD = (
    (0.0301, 0.0371, 0.0100, 0.0069, 0.0098, 0.0075, 0.0026, 0.0053),  # 900 images
    (0.0253, 0.0136, 0.0091, 0.0110, 0.0052, 0.0069, 0.0030, 0.0038),  # 1800 images
    (0.0100, 0.0040, 0.0038, 0.0051, 0.0054, 0.0016, 0.0032, 0.0021),  # 4500 images
    (0.0015, 0.0062, 0.0026, 0.0003, 0.0028, 0.0023, 0.0024, 0.0035),  # 9000 images
    (0.0010, 0.0043, 0.0005, 0.0017, 0.0014, 0.0007, 0.0016, 0.0039),  # 18000 images
    (0.0028, 0.0041, 0.0026, 0.0013, 0.0025, 0.0003, 0.0014, 0.0002),  # 54000 images
)
# Best validation accuracy (fraction) of the same runs (validation = 10 % of train_size).
BEST_VAL_ACCURACY = (
    (0.6267, 0.6767, 0.7333, 0.7600, 0.7933, 0.8067, 0.8200, 0.8200),  # 900 images
    (0.7300, 0.7833, 0.8083, 0.8300, 0.8450, 0.8567, 0.8650, 0.8717),  # 1800 images
    (0.7553, 0.7973, 0.8207, 0.8473, 0.8567, 0.8640, 0.8800, 0.8860),  # 4500 images
    (0.8067, 0.8353, 0.8473, 0.8593, 0.8700, 0.8790, 0.8833, 0.8857),  # 9000 images
    (0.8280, 0.8503, 0.8583, 0.8715, 0.8808, 0.8855, 0.8938, 0.8917),  # 18000 images
    (0.8566, 0.8741, 0.8796, 0.8891, 0.8953, 0.9005, 0.9048, 0.9081),  # 54000 images
)
BEST_VAL_SPREAD = (
    (0.0900, 0.1000, 0.0700, 0.0800, 0.0500, 0.0600, 0.0900, 0.0600),  # 900 images
    (0.0700, 0.0500, 0.0450, 0.0350, 0.0650, 0.0650, 0.0450, 0.0400),  # 1800 images
    (0.0240, 0.0240, 0.0160, 0.0120, 0.0220, 0.0160, 0.0200, 0.0240),  # 4500 images
    (0.0200, 0.0230, 0.0230, 0.0100, 0.0130, 0.0180, 0.0060, 0.0110),  # 9000 images
    (0.0105, 0.0135, 0.0135, 0.0140, 0.0125, 0.0075, 0.0020, 0.0050),  # 18000 images
    (0.0115, 0.0138, 0.0188, 0.0148, 0.0148, 0.0100, 0.0123, 0.0080),  # 54000 images
)
# --- measured: end ---


def _envelope(table) -> tuple[tuple[float, ...], ...]:
    """The best value reached with at most this many images and epochs (running max on both axes)."""
    rows: list[list[float]] = []
    for i, row in enumerate(table):
        out: list[float] = []
        for j, value in enumerate(row):
            best = value
            if j:
                best = max(best, out[j - 1])
            if i:
                best = max(best, rows[i - 1][j])
            out.append(best)
        rows.append(out)
    return tuple(tuple(row) for row in rows)


REFERENCE_TEST = _envelope(TEST_ACCURACY)
REFERENCE_BEST_VAL = _envelope(BEST_VAL_ACCURACY)


def training_images(config: dict) -> int:
    """How many images a run with `config` trains on: its pool (train_size, or all 60 000) minus the
    validation split, exactly as `training.data.prepare_dataset` draws them.

    The pool is a stratified subset with largest-remainder quotas; Fashion-MNIST is balanced, so
    each class gets train_size // 10 images and the first train_size % 10 classes one more. Each
    class then gives round-half-up(count * validation_fraction) images to validation
    (`stratified_split`). E.g. train_size 2 000 -> 1 800, None -> 54 000 (fraction 0.1).
    """
    total = config.get("train_size") or FULL_TRAINING_SET
    total = int(min(max(total, 1), FULL_TRAINING_SET))
    fraction = config.get("validation_fraction")
    fraction = 0.1 if fraction is None else float(fraction)
    base, extra = divmod(total, CLASSES)
    quotas = [base + 1] * extra + [base] * (CLASSES - extra)
    validation = sum(int(math.floor(count * fraction + 0.5)) for count in quotas)
    return max(1, total - validation)


def _bracket(axis: tuple[int, ...], value: float) -> tuple[int, int, float]:
    """(lower index, upper index, weight of the upper) of `value` on `axis`, linear in log(value);
    clamped at both ends (below the first point: the first; above the last: the last)."""
    if value <= axis[0]:
        return 0, 0, 0.0
    if value >= axis[-1]:
        last = len(axis) - 1
        return last, last, 0.0
    upper = bisect_right(axis, value)
    lower = upper - 1
    weight = (math.log(value) - math.log(axis[lower])) / (math.log(axis[upper]) - math.log(axis[lower]))
    return lower, upper, weight


def _interpolate(table, train_images: int, epochs: int) -> float:
    i0, i1, wi = _bracket(TRAIN_IMAGES, max(1, train_images))
    j0, j1, wj = _bracket(EPOCHS, max(1, epochs))
    low = table[i0][j0] * (1 - wj) + table[i0][j1] * wj
    high = table[i1][j0] * (1 - wj) + table[i1][j1] * wj
    return low * (1 - wi) + high * wi


def reference_accuracy(train_images: int, epochs: int, *, metric: str = "test") -> float:
    """The accuracy (fraction) a sound MLP reaches on `train_images` training images in `epochs` epochs.

    Bilinear in log(images) and log(epochs) between the measured points of the envelope, clamped at
    the table's edges (fewer than 900 images rates as 900, more than 30 epochs as 30).
    `metric`: "test" (test accuracy) or "best_val" (best validation accuracy, for runs without a
    test accuracy: on small subsets it reads higher than the test accuracy, being the best of
    several noisy measurements on a small validation split).
    """
    table = REFERENCE_BEST_VAL if metric == "best_val" else REFERENCE_TEST
    return _interpolate(table, train_images, epochs)


def spread(train_images: int, epochs: int, *, metric: str = "test") -> float:
    """The measured seed spread (max - min over SEEDS) there, interpolated like the accuracy."""
    table = BEST_VAL_SPREAD if metric == "best_val" else TEST_SPREAD
    return _interpolate(table, train_images, epochs)


def bands(train_images: int, epochs: int, *, metric: str = "test") -> dict[str, float]:
    """How far below the reference each category reaches there (fractions), with `widened`: the
    measured seed spread beyond EXCELLENT_MARGIN that was added to all three margins (0 mostly)."""
    widened = max(0.0, spread(train_images, epochs, metric=metric) - EXCELLENT_MARGIN)
    return {"excellent": EXCELLENT_MARGIN + widened, "good": GOOD_MARGIN + widened,
            "fair": FAIR_MARGIN + widened, "widened": widened}
