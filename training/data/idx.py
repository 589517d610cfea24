"""The IDX format of the original Fashion-MNIST files: `parse_idx` reads one, `parse_idx_files` all four.

An IDX file is two zero bytes, a type code (0x08: unsigned byte), the number of
dimensions N, N big-endian uint32 sizes, then the payload, row-major. The files may
be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from training.data.raw import IMAGE_SHAPE, N_CLASSES, N_PIXELS, ROLES, DatasetError

# Role in RawDataset -> file name of the uncompressed IDX file (".gz" is appended when compressed).
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IDX_UBYTE = 0x08


def parse_idx(path: str | os.PathLike, *, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip-compressed when the name ends in ``.gz``) into a uint8 array.

    The header must be two zero bytes, the type code 0x08 (unsigned byte) and the
    number of dimensions, followed by that many big-endian uint32 sizes; the
    payload must hold exactly their product of bytes. ``expected_ndim`` defaults
    to the N in an ``idxN`` file name, if there is one.

    Returns a read-only uint8 array whose shape is the header's dimensions, e.g.
    (60000, 28, 28) for images or (60000,) for labels.
    """
    path = Path(path)
    if expected_ndim is None:
        match = re.search(r"idx(\d)", path.name)
        expected_ndim = int(match.group(1)) if match else None
    content = _read_maybe_gzip(path)

    if len(content) < 4:
        raise DatasetError(f"{path}: not an IDX file: only {len(content)} bytes")
    zero1, zero2, type_code, ndim = content[:4]
    if zero1 != 0 or zero2 != 0:
        raise DatasetError(f"{path}: not an IDX file: bad magic number 0x{content[:4].hex()}")
    if type_code != _IDX_UBYTE:
        raise DatasetError(
            f"{path}: unsupported IDX data type code 0x{type_code:02x} (expected 0x08, unsigned byte)"
        )
    if ndim == 0 or (expected_ndim is not None and ndim != expected_ndim):
        expected = f"{expected_ndim}" if expected_ndim is not None else "at least 1"
        raise DatasetError(f"{path}: IDX header says {ndim} dimensions, expected {expected}")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DatasetError(
            f"{path}: truncated: the IDX header needs {header_size} bytes, found {len(content)}"
        )
    dims = struct.unpack(f">{ndim}I", content[4:header_size])

    expected_bytes = math.prod(dims)
    found_bytes = len(content) - header_size
    what = "pixel data" if ndim > 1 else "label data"
    if found_bytes < expected_bytes:
        raise DatasetError(
            f"{path}: truncated: expected {expected_bytes} bytes of {what} for shape {dims}, "
            f"found {found_bytes}"
        )
    if found_bytes > expected_bytes:
        raise DatasetError(
            f"{path}: {found_bytes - expected_bytes} unexpected trailing bytes after the "
            f"{expected_bytes} bytes of {what} for shape {dims}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(dims)


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    # BadGzipFile is an OSError, so it must be caught before the generic OSError.
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data: {exc}") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None


def parse_idx_files(sources: tuple[Path, ...]) -> dict[str, np.ndarray]:
    """The four IDX files (in `ROLES` order) as RawDataset arrays: images (n, 784), labels (n,).

    Checks what a single file cannot: 28x28 images, one label per image, labels 0-9.
    """
    paths = dict(zip(ROLES, sources, strict=True))
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        images = parse_idx(images_path, expected_ndim=3)
        labels = parse_idx(labels_path, expected_ndim=1)
        if images.shape[1:] != IMAGE_SHAPE:
            raise DatasetError(
                f"{images_path}: expected {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} images, "
                f"found {images.shape[1]}x{images.shape[2]}"
            )
        if len(labels) != len(images):
            raise DatasetError(
                f"{labels_path}: {len(labels)} labels, but {images_path.name} has {len(images)} images"
            )
        if labels.size and labels.max() >= N_CLASSES:
            raise DatasetError(f"{labels_path}: label {labels.max()} is out of range 0-{N_CLASSES - 1}")
        arrays[f"{split}_images"] = images.reshape(len(images), N_PIXELS)
        arrays[f"{split}_labels"] = labels
    return arrays
