"""The Fashion-MNIST pipeline: find or download the files, parse them once, cache, split.

Where the data comes from (`find_dataset_dir`), first directory holding all four
IDX files (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``) wins:

1. the ``directory`` argument (e.g. ``--data-dir``);
2. the ``FASHION_MNIST_DIR`` environment variable (read at call time);
3. ``<project root>/data/fashion-mnist``;
4. ``<project root>/../shared/datasets/fashion-mnist``.

If none has them, `load_fashion_mnist` downloads the four ``.gz`` files into
``<project root>/data/fashion-mnist`` (SHA-256 checked, written atomically),
unless ``download=False``. Instead of IDX files, the Kaggle CSV layout
(``label,pixel1..pixel784``) can be loaded with ``csv_train``/``csv_test``.

Caching: parsing is done once. The four arrays are saved as ``.npy`` files in
the cache directory (``cache_dir`` argument, else ``TUNER_CACHE_DIR``, else
``<project root>/var/cache/fashion-mnist``) under names keyed by a hash of the
source files' paths, sizes and mtimes, so editing or replacing a source file
invalidates the cache; stale entries are removed. Each ``.npy`` is written to a
temporary file and moved into place with ``os.replace``, so processes racing to
build the cache never see a half-written file. Every load, cold or warm, returns
read-only ``np.memmap`` arrays from those files (a warm load takes a few ms, and
processes share the pages). Within a process, a memo keyed by the resolved
source paths, their fingerprint and the cache directory returns the very same
`RawDataset` on repeated calls.

`prepare_dataset` then picks an optional stratified subset, makes a stratified
train/validation split and computes the normalisation statistics on the
training split only. Pixels stay uint8 until `Dataset.normalize` turns a batch
into float32.

This module never imports Django.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import itertools
import math
import os
import re
import struct
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "DatasetError",
    "Dataset",
    "GZ_SHA256",
    "IDX_FILES",
    "OFFICIAL_URL",
    "RawDataset",
    "clear_memo",
    "dataset_search_dirs",
    "download_fashion_mnist",
    "find_dataset_dir",
    "load_csv",
    "load_fashion_mnist",
    "parse_idx",
    "prepare_dataset",
    "stratified_split",
    "synthetic_raw_dataset",
]

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
N_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DATA_DIR = PROJECT_ROOT / "data" / "fashion-mnist"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "datasets" / "fashion-mnist"
DEFAULT_CACHE_DIR = PROJECT_ROOT / "var" / "cache" / "fashion-mnist"

OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# Role in RawDataset -> file name of the uncompressed IDX file (".gz" is appended when compressed).
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# SHA-256 of the official .gz files (the ones download_fashion_mnist fetches).
GZ_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

_IDX_UBYTE = 0x08
_CACHE_PREFIX = "fashion-mnist"
_DOWNLOAD_CHUNK = 1 << 20
_CSV_BLOCK_LINES = 4096
_STATS_BLOCK_ROWS = 2048
# mkstemp creates files readable by their owner only; the cache and downloads are
# meant to be shared with other processes (e.g. a web server running as another user).
_FILE_MODE = 0o644
# Stream id mixed into the seed for the train_size subset, so the subset and the
# train/validation split draw from independent random streams of the same seed.
_SUBSET_STREAM = 1


class DatasetError(Exception):
    """A user-facing data problem; the message says which file and what is wrong."""


# --------------------------------------------------------------------------- IDX parsing


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


# --------------------------------------------------------------------------- locating


def dataset_search_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """The directories `find_dataset_dir` tries, in order (see the module docstring)."""
    dirs = []
    if explicit is not None and str(explicit) != "":
        dirs.append(Path(explicit).expanduser())
    from_env = os.environ.get("FASHION_MNIST_DIR")
    if from_env:
        dirs.append(Path(from_env).expanduser())
    dirs += [PROJECT_DATA_DIR, SHARED_DATA_DIR]
    return dirs


def find_dataset_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The first of `dataset_search_dirs` holding all four IDX files (.gz or not), else None."""
    for directory in dataset_search_dirs(explicit):
        if all(_idx_file_in(directory, name) is not None for name in IDX_FILES.values()):
            return directory
    return None


def _idx_file_in(directory: Path, name: str) -> Path | None:
    """``name.gz`` or ``name`` in `directory` (the .gz is preferred: it is what we verify)."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------- download


def download_fashion_mnist(target_dir: str | os.PathLike, *, base_url: str = OFFICIAL_URL,
                           timeout: float = 30) -> Path:
    """Download the four .gz files into `target_dir` and return it.

    Each file is checked against `GZ_SHA256`; files already present with the right
    checksum are kept. A file is streamed to a temporary name in `target_dir` and
    renamed into place only once verified, so a failed or interrupted download
    never leaves a partial file under the real name.
    """
    target_dir = Path(target_dir)
    advice = f"Put the four .gz files in {target_dir} or set FASHION_MNIST_DIR"
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create {target_dir}: {exc.strerror or exc}. {advice}") from None

    for name in (f"{base}.gz" for base in IDX_FILES.values()):
        expected_sha = GZ_SHA256[name]
        destination = target_dir / name
        if destination.is_file() and _sha256_of_file(destination) == expected_sha:
            continue
        url = base_url.rstrip("/") + "/" + name
        fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{name}.", suffix=".part")
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                actual_sha = _stream_to_file(url, out, timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            tmp_path.unlink(missing_ok=True)
            raise DatasetError(
                f"could not download Fashion-MNIST from {url}: {_describe_network_error(exc)}. {advice}"
            ) from None
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        if actual_sha != expected_sha:
            tmp_path.unlink(missing_ok=True)
            raise DatasetError(
                f"{url}: checksum mismatch for {name}: SHA-256 {actual_sha}, expected {expected_sha}; "
                f"the downloaded file was removed. {advice}"
            )
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, destination)
    return target_dir


def _stream_to_file(url: str, out, timeout: float) -> str:
    """Copy the body at `url` into the binary file `out`; return its SHA-256 hex digest."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while chunk := response.read(_DOWNLOAD_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_DOWNLOAD_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- CSV


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


# --------------------------------------------------------------------------- loading + caching


@dataclass(frozen=True, eq=False)
class RawDataset:
    """The full data as stored: uint8 pixels flattened to 784 (row-major 28x28), uint8 labels 0-9.

    Loaded by `load_fashion_mnist`, the arrays are read-only memory maps of the .npy cache.
    """

    train_images: np.ndarray  # uint8 (60000, 784)
    train_labels: np.ndarray  # uint8 (60000,)
    test_images: np.ndarray   # uint8 (10000, 784)
    test_labels: np.ndarray   # uint8 (10000,)


_ROLES = ("train_images", "train_labels", "test_images", "test_labels")
_memo: dict[tuple, RawDataset] = {}
_memo_lock = threading.Lock()


def clear_memo() -> None:
    """Forget the datasets memoised in this process (the on-disk cache is kept)."""
    with _memo_lock:
        _memo.clear()


def load_fashion_mnist(directory: str | os.PathLike | None = None, *,
                       cache_dir: str | os.PathLike | None = None, download: bool = True,
                       csv_train: str | os.PathLike | None = None,
                       csv_test: str | os.PathLike | None = None) -> RawDataset:
    """Load Fashion-MNIST as memory-mapped uint8 arrays, parsing the source files only once.

    IDX files are looked up as described in the module docstring (downloaded when
    absent and `download` is true); with `csv_train` and `csv_test`, those Kaggle-layout
    CSV files are used instead. Raises DatasetError for anything missing or malformed.
    """
    cache_dir = Path(cache_dir if cache_dir is not None
                     else os.environ.get("TUNER_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()
    if csv_train is not None or csv_test is not None:
        if csv_train is None or csv_test is None:
            raise DatasetError("loading from CSV needs both a training and a test CSV file")
        kind, sources = "csv", (Path(csv_train), Path(csv_test))
    else:
        data_dir = _find_or_download(directory, download)
        kind, sources = "idx", tuple(_idx_file_in(data_dir, IDX_FILES[role]) for role in _ROLES)

    fingerprint = _fingerprint(sources)
    memo_key = (kind, tuple(str(p.resolve()) for p in sources), fingerprint, str(cache_dir.resolve()))
    with _memo_lock:
        raw = _memo.get(memo_key)
        if raw is None:
            raw = _load_cache(cache_dir, kind, fingerprint)
            if raw is None:
                arrays = _parse_idx_sources(sources) if kind == "idx" else _parse_csv_sources(sources)
                _write_cache(cache_dir, kind, fingerprint, arrays)
                raw = _load_cache(cache_dir, kind, fingerprint)
                if raw is None:
                    raise DatasetError(f"{cache_dir}: the cache just written cannot be read back")
            _memo[memo_key] = raw
    return raw


def _find_or_download(directory, download: bool) -> Path:
    if directory is not None and str(directory) != "":
        # A directory the user named explicitly must hold the files: silently training on
        # another copy would hide a typo.
        explicit = Path(directory).expanduser()
        if find_dataset_dir(explicit) != explicit:
            missing = [f"{n}.gz" for n in IDX_FILES.values() if _idx_file_in(explicit, n) is None]
            raise DatasetError(f"{explicit}: not a Fashion-MNIST directory (missing {', '.join(missing)})")
        return explicit
    found = find_dataset_dir(directory)
    if found is not None:
        return found
    looked_in = "; ".join(str(d) for d in dataset_search_dirs(directory))
    names = ", ".join(f"{name}.gz" for name in IDX_FILES.values())
    if not download:
        raise DatasetError(
            f"Fashion-MNIST not found: none of these directories holds all of {names}: {looked_in}. "
            "Put the files in one of them or set FASHION_MNIST_DIR"
        )
    try:
        return download_fashion_mnist(PROJECT_DATA_DIR)
    except DatasetError as exc:
        raise DatasetError(f"Fashion-MNIST not found locally (looked in: {looked_in}) and {exc}") from None


def _fingerprint(sources: Iterable[Path]) -> str:
    """Short hash of the sources' resolved paths, sizes and mtimes: the cache key."""
    digest = hashlib.sha256()
    for path in sources:
        try:
            stat = path.stat()
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def _cache_path(cache_dir: Path, kind: str, fingerprint: str, role: str) -> Path:
    return cache_dir / f"{_CACHE_PREFIX}-{kind}-{fingerprint}-{role}.npy"


def _load_cache(cache_dir: Path, kind: str, fingerprint: str) -> RawDataset | None:
    """The cached arrays as memory maps, or None if any is missing or unusable."""
    try:
        arrays = {role: np.load(_cache_path(cache_dir, kind, fingerprint, role), mmap_mode="r")
                  for role in _ROLES}
    except (OSError, ValueError, EOFError):
        return None  # absent, or damaged (e.g. by a crash): rebuilt by the caller
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if not (images.dtype == np.uint8 and labels.dtype == np.uint8 and images.ndim == 2
                and images.shape[1] == N_PIXELS and labels.shape == (images.shape[0],)):
            return None
    return RawDataset(**arrays)


def _write_cache(cache_dir: Path, kind: str, fingerprint: str, arrays: dict[str, np.ndarray]) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for role, array in arrays.items():
            final = _cache_path(cache_dir, kind, fingerprint, role)
            fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{final.stem}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    np.save(out, np.ascontiguousarray(array))
                os.chmod(tmp_name, _FILE_MODE)
                # Atomic: a concurrent reader sees either no file or a complete one.
                os.replace(tmp_name, final)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
    except OSError as exc:
        raise DatasetError(
            f"cannot write the dataset cache in {cache_dir}: {exc.strerror or exc}. "
            "Pass cache_dir or set TUNER_CACHE_DIR to a writable directory"
        ) from None
    # Entries for older versions of the same kind of source are dead weight (~55 MB each).
    for role in _ROLES:
        for stale in cache_dir.glob(f"{_CACHE_PREFIX}-{kind}-*-{role}.npy"):
            if stale.name != _cache_path(cache_dir, kind, fingerprint, role).name:
                try:
                    stale.unlink()  # memory maps of it that are still open stay valid on POSIX
                except OSError:
                    pass


def _parse_idx_sources(sources: tuple[Path, ...]) -> dict[str, np.ndarray]:
    paths = dict(zip(_ROLES, sources, strict=True))
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


def _parse_csv_sources(sources: tuple[Path, ...]) -> dict[str, np.ndarray]:
    train_images, train_labels = load_csv(sources[0])
    test_images, test_labels = load_csv(sources[1])
    return {"train_images": train_images, "train_labels": train_labels,
            "test_images": test_images, "test_labels": test_labels}


# --------------------------------------------------------------------------- split + normalise


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training run's data: uint8 pixels (n, 784), int64 labels (n,), train-only statistics."""

    x_train: np.ndarray  # uint8 (n_train, 784)
    y_train: np.ndarray  # int64 (n_train,)
    x_val: np.ndarray    # uint8 (n_val, 784)
    y_val: np.ndarray    # int64 (n_val,)
    x_test: np.ndarray   # uint8 (n_test, 784)
    y_test: np.ndarray   # int64 (n_test,)
    mean: float          # pixel mean of x_train, 0-255 scale
    std: float           # pixel standard deviation of x_train, 0-255 scale (1.0 if the pixels are constant)
    class_names: tuple[str, ...] = CLASS_NAMES

    def normalize(self, x_uint8: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 ``(x - mean) / std`` of a uint8 batch (any shape), into `out` if given.

        Computed in float32 throughout: no float64 temporaries.
        """
        if out is None:
            out = np.empty(x_uint8.shape, dtype=np.float32)
        elif out.dtype != np.float32 or out.shape != x_uint8.shape:
            raise ValueError(f"out must be float32 of shape {x_uint8.shape}, got {out.dtype} {out.shape}")
        np.subtract(x_uint8, np.float32(self.mean), out=out, dtype=np.float32)
        np.multiply(out, np.float32(1.0 / self.std), out=out)
        return out


def stratified_split(labels: np.ndarray, validation_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train_indices, val_indices), both int64 and sorted ascending.

    Each class contributes round-half-up(count * validation_fraction) of its samples,
    drawn with ``np.random.default_rng(seed)``, to the validation set; the rest go to
    training. Same labels and seed give the same split.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DatasetError(f"labels must be one-dimensional, got shape {labels.shape}")
    if not 0.0 <= validation_fraction < 1.0:
        raise DatasetError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    by_class = np.argsort(labels, kind="stable")
    _, starts, counts = np.unique(labels[by_class], return_index=True, return_counts=True)
    val_parts = [np.empty(0, dtype=np.int64)]
    for start, count in zip(starts, counts, strict=True):
        n_val = int(math.floor(count * validation_fraction + 0.5))
        val_parts.append(rng.permutation(by_class[start:start + count])[:n_val])
    val_indices = np.sort(np.concatenate(val_parts)).astype(np.int64)
    in_train = np.ones(len(labels), dtype=bool)
    in_train[val_indices] = False
    return np.flatnonzero(in_train).astype(np.int64), val_indices


def _stratified_subset(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted int64 indices of exactly `size` samples, each class in proportion to its count.

    Per-class quotas are floored, then the leftover places go to the classes with the
    largest fractional parts (largest-remainder method), so the total is exact.
    """
    by_class = np.argsort(labels, kind="stable")
    _, starts, counts = np.unique(labels[by_class], return_index=True, return_counts=True)
    ideal = counts * (size / len(labels))
    quotas = np.floor(ideal).astype(np.int64)
    leftover = size - int(quotas.sum())
    quotas[np.argsort(-(ideal - quotas), kind="stable")[:leftover]] += 1
    parts = [rng.permutation(by_class[start:start + count])[:quota]
             for start, count, quota in zip(starts, counts, quotas, strict=True)]
    return np.sort(np.concatenate(parts)).astype(np.int64)


def _pixel_mean_std(images: np.ndarray) -> tuple[float, float]:
    """Exact mean and (population) std of all pixels of uint8 `images` (n, ...).

    Uses integer sums of x and x² over blocks of rows, so no float64 copy of the data exists.
    """
    rows = images.reshape(len(images), -1)
    n = rows.size
    total = int(rows.sum(dtype=np.uint64))
    total_sq = 0
    for start in range(0, len(rows), _STATS_BLOCK_ROWS):
        block = rows[start:start + _STATS_BLOCK_ROWS].astype(np.uint32)
        np.multiply(block, block, out=block)
        total_sq += int(block.sum(dtype=np.uint64))
    mean = total / n
    variance = (n * total_sq - total * total) / (n * n)  # numerator is an exact integer
    return mean, math.sqrt(variance)


def prepare_dataset(raw: RawDataset, *, validation_fraction: float, seed: int,
                    train_size: int | None = None) -> Dataset:
    """Split `raw` into train/validation/test for one run.

    `train_size`, when given, first draws a stratified subset of that many training
    images (train + validation together, e.g. 10000 with fraction 0.1 -> 9000 + 1000);
    the split of that pool is `stratified_split(pool_labels, validation_fraction, seed)`.
    The test set is always all of ``raw.test_*``. Mean and std come from x_train only.
    x_train/x_val are in-memory uint8 copies; x_test stays a view of raw's memory map.
    """
    n_available = len(raw.train_labels)
    if train_size is None:
        pool = np.arange(n_available, dtype=np.int64)
    else:
        if train_size > n_available:
            raise DatasetError(
                f"train_size={train_size} is larger than the {n_available} training images available"
            )
        if train_size < 1:
            raise DatasetError(f"train_size must be at least 1, got {train_size}")
        pool = _stratified_subset(np.asarray(raw.train_labels), train_size,
                                  np.random.default_rng([seed, _SUBSET_STREAM]))
    pool_labels = np.asarray(raw.train_labels)[pool]
    train_in_pool, val_in_pool = stratified_split(pool_labels, validation_fraction, seed)
    train_indices, val_indices = pool[train_in_pool], pool[val_in_pool]
    if len(train_indices) == 0:
        raise DatasetError("no training images left after the validation split")

    # Indices are sorted, so fancy-indexing the memory map reads it sequentially.
    # np.asarray drops the np.memmap subclass: these are plain in-memory copies.
    x_train = np.asarray(raw.train_images[train_indices])
    mean, std = _pixel_mean_std(x_train)
    return Dataset(
        x_train=x_train,
        y_train=np.asarray(raw.train_labels[train_indices]).astype(np.int64),
        x_val=np.asarray(raw.train_images[val_indices]),
        y_val=np.asarray(raw.train_labels[val_indices]).astype(np.int64),
        x_test=raw.test_images,
        y_test=np.asarray(raw.test_labels).astype(np.int64),
        mean=mean,
        std=std if std > 0 else 1.0,  # constant pixels: avoid dividing by zero
    )


# --------------------------------------------------------------------------- synthetic data


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
