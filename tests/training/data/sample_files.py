"""Small IDX and CSV files written for the data tests, and the real files' shared directory."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
from pathlib import Path

import numpy as np

from training.data import IDX_FILES, download, locate

SHARED_DIR = Path(locate.SHARED_DATA_DIR)


def idx_bytes(array: np.ndarray, *, magic: bytes | None = None) -> bytes:
    """The IDX encoding of a uint8 array (header + payload); `magic` overrides the first 4 bytes."""
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, **kwargs) -> Path:
    payload = idx_bytes(array, **kwargs)
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)
    return path


def write_idx_dataset(directory: Path, n_train: int = 20, n_test: int = 10, *, seed: int = 0,
                      n_train_labels: int | None = None, gz: bool = True) -> dict[str, np.ndarray]:
    """Four small IDX files in `directory`; returns the arrays written (images as (n, 28, 28))."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train_labels or n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    suffix = ".gz" if gz else ""
    for role, array in arrays.items():
        write_idx(directory / (IDX_FILES[role] + suffix), array)
    return arrays


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_fake_dataset(served: Path, monkeypatch) -> dict[str, bytes]:
    """Put four small .gz files in `served` and make them the expected checksums."""
    write_idx_dataset(served)
    contents = {f"{base}.gz": (served / f"{base}.gz").read_bytes() for base in IDX_FILES.values()}
    monkeypatch.setattr(download, "GZ_SHA256", {name: hashlib.sha256(body).hexdigest()
                                            for name, body in contents.items()})
    return contents


def csv_text(labels, images, header=True) -> str:
    lines = ["label," + ",".join(f"pixel{i}" for i in range(1, 785))] if header else []
    lines += [",".join(map(str, [label, *row])) for label, row in zip(labels, images, strict=True)]
    return "\n".join(lines) + "\n"
