"""`load_fashion_mnist`: locate the source files, parse them once, and serve them from a .npy cache.

The four arrays are saved as ``.npy`` files in the cache directory (``cache_dir``
argument, else ``TUNER_CACHE_DIR``, else ``<project root>/var/cache/fashion-mnist``)
under names keyed by a hash of the source files' paths, sizes and mtimes, so editing or
replacing a source file invalidates the cache; stale entries are removed. Each ``.npy``
is written to a temporary file and moved into place with ``os.replace``, so processes
racing to build the cache never see a half-written file. Every load, cold or warm,
returns read-only ``np.memmap`` arrays from those files (a warm load takes a few ms, and
processes share the pages). Within a process, a memo keyed by the resolved source paths,
their fingerprint and the cache directory returns the very same `RawDataset` on
repeated calls.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from training.data.csv import parse_csv_files
from training.data.idx import IDX_FILES, parse_idx_files
from training.data.locate import PROJECT_ROOT, find_or_download, idx_file_in
from training.data.raw import FILE_MODE, N_PIXELS, ROLES, DatasetError, RawDataset

DEFAULT_CACHE_DIR = PROJECT_ROOT / "var" / "cache" / "fashion-mnist"

_CACHE_PREFIX = "fashion-mnist"
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

    IDX files are looked up as `training.data.locate` describes (downloaded when absent
    and `download` is true); with `csv_train` and `csv_test`, those Kaggle-layout CSV
    files are used instead. Raises DatasetError for anything missing or malformed.
    """
    cache_dir = Path(cache_dir if cache_dir is not None
                     else os.environ.get("TUNER_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()
    if csv_train is not None or csv_test is not None:
        if csv_train is None or csv_test is None:
            raise DatasetError("loading from CSV needs both a training and a test CSV file")
        kind, sources = "csv", (Path(csv_train), Path(csv_test))
    else:
        data_dir = find_or_download(directory, download)
        kind, sources = "idx", tuple(idx_file_in(data_dir, IDX_FILES[role]) for role in ROLES)

    fingerprint = _fingerprint(sources)
    memo_key = (kind, tuple(str(p.resolve()) for p in sources), fingerprint, str(cache_dir.resolve()))
    with _memo_lock:
        raw = _memo.get(memo_key)
        if raw is None:
            raw = _load_cache(cache_dir, kind, fingerprint)
            if raw is None:
                arrays = parse_idx_files(sources) if kind == "idx" else parse_csv_files(sources)
                _write_cache(cache_dir, kind, fingerprint, arrays)
                raw = _load_cache(cache_dir, kind, fingerprint)
                if raw is None:
                    raise DatasetError(f"{cache_dir}: the cache just written cannot be read back")
            _memo[memo_key] = raw
    return raw


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
                  for role in ROLES}
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
                os.chmod(tmp_name, FILE_MODE)
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
    for role in ROLES:
        for stale in cache_dir.glob(f"{_CACHE_PREFIX}-{kind}-*-{role}.npy"):
            if stale.name != _cache_path(cache_dir, kind, fingerprint, role).name:
                try:
                    stale.unlink()  # memory maps of it that are still open stay valid on POSIX
                except OSError:
                    pass

