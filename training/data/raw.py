"""What Fashion-MNIST is once loaded: ten classes of 28x28 uint8 images, held as `RawDataset`.

Also the error every part of the data pipeline raises (`DatasetError`) and the mode of
the files it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
N_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]

# The four arrays of a RawDataset, in the order of its fields.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")

# mkstemp creates files readable by their owner only; the cache and downloads are
# meant to be shared with other processes (e.g. a web server running as another user).
FILE_MODE = 0o644


class DatasetError(Exception):
    """A user-facing data problem; the message says which file and what is wrong."""


@dataclass(frozen=True, eq=False)
class RawDataset:
    """The full data as stored: uint8 pixels flattened to 784 (row-major 28x28), uint8 labels 0-9.

    Loaded by `load_fashion_mnist`, the arrays are read-only memory maps of the .npy cache.
    """

    train_images: np.ndarray  # uint8 (60000, 784)
    train_labels: np.ndarray  # uint8 (60000,)
    test_images: np.ndarray   # uint8 (10000, 784)
    test_labels: np.ndarray   # uint8 (10000,)
