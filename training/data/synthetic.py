"""A small, easily learnable stand-in for Fashion-MNIST, for tests and demos without the files."""

from __future__ import annotations

import numpy as np

from training.data.raw import IMAGE_SHAPE, N_CLASSES, N_PIXELS, RawDataset


def synthetic_raw_dataset(n_train: int = 600, n_test: int = 100, seed: int = 0) -> RawDataset:
    """A small, easily learnable stand-in for Fashion-MNIST (same dtypes and layout).

    Class c is a bright Gaussian blob at its own position on the 28x28 grid, with
    random brightness and pixel noise. Labels are balanced (n // 10 per class, the
    remainder spread over the first classes) and shuffled.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:IMAGE_SHAPE[0], 0:IMAGE_SHAPE[1]]
    centres = np.array([(6, 6), (6, 14), (6, 22), (14, 6), (14, 14),
                        (14, 22), (22, 6), (22, 14), (22, 22), (10, 18)], dtype=np.float32)
    squared_distance = ((rows[None] - centres[:, 0, None, None]) ** 2
                        + (cols[None] - centres[:, 1, None, None]) ** 2)
    prototypes = (255.0 * np.exp(-squared_distance / (2 * 3.0**2))).reshape(N_CLASSES, N_PIXELS)
    prototypes = prototypes.astype(np.float32)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n) % N_CLASSES).astype(np.uint8)
        brightness = rng.uniform(0.6, 1.0, size=(n, 1)).astype(np.float32)
        noise = rng.normal(0.0, 25.0, size=(n, N_PIXELS)).astype(np.float32)
        images = np.clip(prototypes[labels] * brightness + noise, 0, 255).astype(np.uint8)
        return images, labels

    train_images, train_labels = make(n_train)
    test_images, test_labels = make(n_test)
    return RawDataset(train_images, train_labels, test_images, test_labels)
