"""The Kaggle CSV layout of Fashion-MNIST: a header ``label,pixel1,...,pixel784`` (optional),
then one row per image: its label (0-9) and its 784 pixel values (0-255), all integers."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from training.data.raw import N_CLASSES, N_PIXELS, DatasetError

_CSV_BLOCK_LINES = 4096


def load_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the Kaggle CSV layout: optional header ``label,pixel1,...,pixel784``, then rows
    of a label (0-9) and 784 pixel values (0-255), all integers.

    Returns (images uint8 (n, 784), labels uint8 (n,)). Blank lines are ignored; errors
    name the 1-based line of the file.
    """
    path = Path(path)
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None

    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DatasetError(f"{path}: empty file, expected rows of a label and {N_PIXELS} pixels")
    # A header ("label,pixel1,...") has no numeric field; a data row with one bad value
    # still has 784 numeric ones, so it is reported rather than skipped as a header.
    has_header = not any(field.strip().lstrip(b"+-").isdigit() for field in lines[first].split(b","))

    blocks = []
    # Parsed in blocks of lines so the temporaries stay a few MB whatever the file size.
    for start in range(0, len(lines), _CSV_BLOCK_LINES):
        block = lines[start:start + _CSV_BLOCK_LINES]
        line_numbers = np.arange(start + 1, start + 1 + len(block))
        as_array = np.array(block, dtype=bytes)
        nonblank = np.strings.strip(as_array) != b""
        n_fields = np.strings.count(as_array, b",") + 1
        wrong = np.flatnonzero(nonblank & (n_fields != N_PIXELS + 1))
        if wrong.size:
            i = wrong[0]
            raise DatasetError(
                f"{path}: line {line_numbers[i]}: expected {N_PIXELS + 1} comma-separated columns "
                f"(label + {N_PIXELS} pixels), found {n_fields[i]}"
            )
        if has_header and start <= first < start + len(block):
            nonblank[first - start] = False  # the header is not data
        rows = list(itertools.compress(block, nonblank.tolist()))
        if not rows:
            continue
        row_line_numbers = line_numbers[nonblank]
        try:
            values = np.loadtxt(rows, delimiter=",", dtype=np.int16, ndmin=2, encoding="latin-1")
        except ValueError:
            # Rare path: find exactly which line and value numpy could not read.
            raise _describe_csv_value_error(path, rows, row_line_numbers) from None
        out_of_range = (values[:, 0] > N_CLASSES - 1) | (values < 0).any(axis=1) | (values > 255).any(axis=1)
        bad_rows = np.flatnonzero(out_of_range)
        if bad_rows.size:
            raise _describe_csv_value_error(path, rows[bad_rows[0]:bad_rows[0] + 1],
                                            row_line_numbers[bad_rows[0]:bad_rows[0] + 1])
        blocks.append(values.astype(np.uint8))

    if not blocks:
        raise DatasetError(f"{path}: no data rows, only a header")
    table = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return np.ascontiguousarray(table[:, 1:]), np.ascontiguousarray(table[:, 0])


def _describe_csv_value_error(path: Path, rows: list[bytes], line_numbers: np.ndarray) -> DatasetError:
    """Locate the first non-integer or out-of-range value in `rows` (the error path only)."""
    for line, number in zip(rows, line_numbers, strict=True):
        for column, field in enumerate(line.split(b",")):
            text = field.strip().decode("latin-1")
            what = "label" if column == 0 else f"pixel{column}"
            limit = N_CLASSES - 1 if column == 0 else 255
            try:
                value = int(text)
            except ValueError:
                return DatasetError(f"{path}: line {number}: {what} is not an integer: {text!r}")
            if not 0 <= value <= limit:
                return DatasetError(f"{path}: line {number}: {what}={value} is out of range 0-{limit}")
    return DatasetError(f"{path}: unreadable values")  # numpy refused something we accept


def parse_csv_files(sources: tuple[Path, ...]) -> dict[str, np.ndarray]:
    """A training and a test CSV file as RawDataset arrays: images (n, 784), labels (n,)."""
    train_images, train_labels = load_csv(sources[0])
    test_images, test_labels = load_csv(sources[1])
    return {"train_images": train_images, "train_labels": train_labels,
            "test_images": test_images, "test_labels": test_labels}
