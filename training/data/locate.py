"""Where the four IDX files are, or where they are downloaded to when nowhere.

`find_dataset_dir`: the first directory holding all four IDX files
(``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``) wins:

1. the ``directory`` argument (e.g. ``--data-dir``);
2. the ``FASHION_MNIST_DIR`` environment variable (read at call time);
3. ``<project root>/data/fashion-mnist``;
4. ``<project root>/../shared/datasets/fashion-mnist``.

`find_or_download` downloads the four ``.gz`` files into ``<project root>/data/fashion-mnist``
when none has them.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.data.download import download_fashion_mnist
from training.data.idx import IDX_FILES
from training.data.raw import DatasetError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_DATA_DIR = PROJECT_ROOT / "data" / "fashion-mnist"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "datasets" / "fashion-mnist"


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
        if all(idx_file_in(directory, name) is not None for name in IDX_FILES.values()):
            return directory
    return None


def idx_file_in(directory: Path, name: str) -> Path | None:
    """``name.gz`` or ``name`` in `directory` (the .gz is preferred: it is what we verify)."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def find_or_download(directory: str | os.PathLike | None, download: bool) -> Path:
    """The directory holding the four IDX files: `directory` when given (it must hold them),
    else `find_dataset_dir`'s, else the project data dir after downloading into it (when
    `download`). Raises DatasetError naming every place it looked."""
    if directory is not None and str(directory) != "":
        # A directory the user named explicitly must hold the files: silently training on
        # another copy would hide a typo.
        explicit = Path(directory).expanduser()
        if find_dataset_dir(explicit) != explicit:
            missing = [f"{n}.gz" for n in IDX_FILES.values() if idx_file_in(explicit, n) is None]
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
