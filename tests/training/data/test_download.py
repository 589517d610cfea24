"""Specification of training/data/download.py: fetching the official files, checksums verified."""

from __future__ import annotations

import hashlib

import pytest

from tests.training.data.sample_files import SHARED_DIR, closed_port, serve_fake_dataset
from training.data import GZ_SHA256, DatasetError, download_fashion_mnist, find_dataset_dir


def test_official_checksums_match_the_shared_copies():
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent")
    for name, expected in GZ_SHA256.items():
        assert hashlib.sha256((SHARED_DIR / name).read_bytes()).hexdigest() == expected, name


def test_download_fetches_and_verifies_all_files(tmp_path, file_server, monkeypatch):
    served, base_url = file_server
    contents = serve_fake_dataset(served, monkeypatch)
    target = tmp_path / "downloaded" / "fashion-mnist"

    assert download_fashion_mnist(target, base_url=base_url, timeout=5) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(contents)  # no temp files left
    for name, body in contents.items():
        assert (target / name).read_bytes() == body
    assert find_dataset_dir(target) == target
    # Files already present with the right checksum are not fetched again.
    assert download_fashion_mnist(target, base_url=f"http://127.0.0.1:{closed_port()}/") == target


def test_download_removes_a_file_with_the_wrong_checksum(tmp_path, file_server, monkeypatch):
    served, base_url = file_server
    serve_fake_dataset(served, monkeypatch)
    (served / "t10k-images-idx3-ubyte.gz").write_bytes(b"tampered")
    target = tmp_path / "downloaded"

    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz.*checksum") as info:
        download_fashion_mnist(target, base_url=base_url, timeout=5)
    assert "FASHION_MNIST_DIR" in str(info.value)
    assert not (target / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(target.glob(".*part"))


def test_download_of_a_missing_file_is_a_dataset_error(tmp_path, file_server, monkeypatch):
    served, base_url = file_server
    serve_fake_dataset(served, monkeypatch)
    (served / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="HTTP 404"):
        download_fashion_mnist(tmp_path / "downloaded", base_url=base_url, timeout=5)


def test_download_from_unreachable_url_is_a_clear_dataset_error(tmp_path):
    base_url = f"http://127.0.0.1:{closed_port()}/"
    target = tmp_path / "downloaded"
    with pytest.raises(DatasetError) as info:
        download_fashion_mnist(target, base_url=base_url, timeout=5)
    message = str(info.value)
    assert message.startswith(f"could not download Fashion-MNIST from {base_url}")
    assert f"Put the four .gz files in {target} or set FASHION_MNIST_DIR" in message
    assert list(target.iterdir()) == []
