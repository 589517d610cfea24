"""Specification of training/data/locate.py: where the files are looked for, and downloaded to."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.training.data.sample_files import closed_port, serve_fake_dataset, write_idx_dataset
from training.data import (
    DatasetError,
    cache,
    download_fashion_mnist,
    find_dataset_dir,
    load_fashion_mnist,
    locate,
)


def test_find_dataset_dir_lookup_order(tmp_path, monkeypatch):
    explicit, from_env, project, shared = (tmp_path / name
                                           for name in ("explicit", "env", "project", "shared"))
    monkeypatch.setattr(locate, "PROJECT_DATA_DIR", project)
    monkeypatch.setattr(locate, "SHARED_DATA_DIR", shared)
    assert find_dataset_dir() is None

    write_idx_dataset(shared)
    assert find_dataset_dir() == shared
    write_idx_dataset(project, gz=False)  # uncompressed names count too
    assert find_dataset_dir() == project
    write_idx_dataset(from_env)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(from_env))  # read at call time
    assert find_dataset_dir() == from_env
    write_idx_dataset(explicit)
    assert find_dataset_dir(explicit) == explicit
    assert find_dataset_dir(str(explicit)) == explicit


def test_find_dataset_dir_skips_directories_missing_a_file(tmp_path, monkeypatch, no_default_dirs):
    incomplete, complete = tmp_path / "incomplete", tmp_path / "complete"
    write_idx_dataset(incomplete)
    (incomplete / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx_dataset(complete)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(complete))
    assert find_dataset_dir(incomplete) == complete


def test_default_directories_are_relative_to_the_project_root():
    root = Path(locate.__file__).resolve().parents[2]
    assert locate.PROJECT_DATA_DIR == root / "data" / "fashion-mnist"
    assert locate.SHARED_DATA_DIR == root.parent / "shared" / "datasets" / "fashion-mnist"
    assert cache.DEFAULT_CACHE_DIR == root / "var" / "cache" / "fashion-mnist"


def test_load_downloads_into_the_project_data_dir_when_nothing_is_found(
        tmp_path, file_server, monkeypatch, no_default_dirs):
    served, base_url = file_server
    serve_fake_dataset(served, monkeypatch)
    monkeypatch.setattr(locate, "download_fashion_mnist",
                        functools.partial(download_fashion_mnist, base_url=base_url, timeout=5))
    raw = load_fashion_mnist(cache_dir=tmp_path / "cache")
    assert raw.train_images.shape == (20, 784)
    assert find_dataset_dir() == locate.PROJECT_DATA_DIR


def test_load_without_download_lists_the_places_it_looked(tmp_path, monkeypatch, no_default_dirs):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "from-env"))
    with pytest.raises(DatasetError) as info:
        load_fashion_mnist(cache_dir=tmp_path / "cache", download=False)
    message = str(info.value)
    for place in ("from-env", "project-data", "shared-data"):
        assert str(tmp_path / place) in message


def test_an_explicit_directory_without_the_files_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    (tmp_path / "explicit").mkdir()
    with pytest.raises(DatasetError, match=r"explicit: not a Fashion-MNIST directory \(missing train-images"):
        load_fashion_mnist(tmp_path / "explicit", cache_dir=tmp_path / "cache")


def test_load_reports_failed_download_and_places_looked(tmp_path, monkeypatch, no_default_dirs):
    monkeypatch.setattr(locate, "download_fashion_mnist", functools.partial(
        download_fashion_mnist, base_url=f"http://127.0.0.1:{closed_port()}/", timeout=5))
    with pytest.raises(DatasetError, match=r"could not download.*") as info:
        load_fashion_mnist(cache_dir=tmp_path / "cache")
    assert str(tmp_path / "shared-data") in str(info.value)
