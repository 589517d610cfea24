"""Specification of training/data.py: IDX/CSV parsing, lookup, download, caching, splitting."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from training import data
from training.data import (
    CLASS_NAMES,
    DatasetError,
    RawDataset,
    download_fashion_mnist,
    find_dataset_dir,
    load_csv,
    load_fashion_mnist,
    parse_idx,
    prepare_dataset,
    stratified_split,
    synthetic_raw_dataset,
)

SHARED_DIR = Path(data.SHARED_DATA_DIR)


# --------------------------------------------------------------------------- helpers


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
        write_idx(directory / (data.IDX_FILES[role] + suffix), array)
    return arrays


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No test sees the developer's FASHION_MNIST_DIR/TUNER_CACHE_DIR or another test's memo."""
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("TUNER_CACHE_DIR", str(tmp_path / "default-cache"))
    data.clear_memo()
    yield
    data.clear_memo()


@pytest.fixture
def no_default_dirs(monkeypatch, tmp_path):
    """Point the project data dir and the shared dir at empty places."""
    monkeypatch.setattr(data, "PROJECT_DATA_DIR", tmp_path / "project-data")
    monkeypatch.setattr(data, "SHARED_DATA_DIR", tmp_path / "shared-data")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@pytest.fixture
def file_server(tmp_path):
    """Serve tmp_path/served over HTTP on 127.0.0.1 (a free port); yields (dir, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- parse_idx


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"])
def test_parse_idx_reads_gzip_and_plain_files(tmp_path, name):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    result = parse_idx(write_idx(tmp_path / name, images))
    assert result.dtype == np.uint8
    assert result.shape == (3, 28, 28)
    np.testing.assert_array_equal(result, images)


def test_parse_idx_reads_labels(tmp_path):
    labels = np.array([9, 0, 3, 3], dtype=np.uint8)
    result = parse_idx(write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels))
    assert result.shape == (4,)
    np.testing.assert_array_equal(result, labels)


def test_parse_idx_rejects_bad_magic_naming_the_file(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8),
                     magic=bytes([1, 2, 0x08, 1]))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz.*magic"):
        parse_idx(path)


def test_parse_idx_rejects_non_uint8_type_code(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(5, np.uint8), magic=bytes([0, 0, 0x0D, 1]))
    with pytest.raises(DatasetError, match=r"labels-idx1-ubyte.*type code 0x0d"):
        parse_idx(path)


def test_parse_idx_rejects_unexpected_number_of_dimensions(tmp_path):
    # An idx3 file name whose header claims a 1-D array.
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*1 dimensions, expected 3"):
        parse_idx(path)


def test_parse_idx_reports_truncated_payload(tmp_path):
    full = idx_bytes(np.zeros((60000, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(full[:16 + 1000]))
    with pytest.raises(DatasetError) as info:
        parse_idx(path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "truncated" in message
    assert "47040000" in message and "found 1000" in message


def test_parse_idx_reports_truncated_header(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"\x00\x00")
    with pytest.raises(DatasetError, match="truncated"):
        parse_idx(path)


def test_parse_idx_rejects_trailing_bytes(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(5, np.uint8)) + b"garbage")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.*7 unexpected trailing bytes"):
        parse_idx(path)


def test_parse_idx_reports_corrupt_gzip(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz.*gzip"):
        parse_idx(path)


def test_parse_idx_reports_gzip_cut_short(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(5000, np.uint8)))[:-20])
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz"):
        parse_idx(path)


def test_parse_idx_reports_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope-idx1-ubyte.*not found"):
        parse_idx(tmp_path / "nope-idx1-ubyte")


# --------------------------------------------------------------------------- find_dataset_dir


def test_find_dataset_dir_lookup_order(tmp_path, monkeypatch):
    explicit, from_env, project, shared = (tmp_path / name
                                           for name in ("explicit", "env", "project", "shared"))
    monkeypatch.setattr(data, "PROJECT_DATA_DIR", project)
    monkeypatch.setattr(data, "SHARED_DATA_DIR", shared)
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
    root = Path(data.__file__).resolve().parents[1]
    assert data.PROJECT_DATA_DIR == root / "data" / "fashion-mnist"
    assert data.SHARED_DATA_DIR == root.parent / "shared" / "datasets" / "fashion-mnist"
    assert data.DEFAULT_CACHE_DIR == root / "var" / "cache" / "fashion-mnist"


# --------------------------------------------------------------------------- download


def serve_fake_dataset(served: Path, monkeypatch) -> dict[str, bytes]:
    """Put four small .gz files in `served` and make them the expected checksums."""
    write_idx_dataset(served)
    contents = {f"{base}.gz": (served / f"{base}.gz").read_bytes() for base in data.IDX_FILES.values()}
    monkeypatch.setattr(data, "GZ_SHA256", {name: hashlib.sha256(body).hexdigest()
                                            for name, body in contents.items()})
    return contents


def test_official_checksums_match_the_shared_copies():
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent")
    for name, expected in data.GZ_SHA256.items():
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


def test_load_downloads_into_the_project_data_dir_when_nothing_is_found(
        tmp_path, file_server, monkeypatch, no_default_dirs):
    served, base_url = file_server
    serve_fake_dataset(served, monkeypatch)
    monkeypatch.setattr(data, "download_fashion_mnist",
                        functools.partial(download_fashion_mnist, base_url=base_url, timeout=5))
    raw = load_fashion_mnist(cache_dir=tmp_path / "cache")
    assert raw.train_images.shape == (20, 784)
    assert find_dataset_dir() == data.PROJECT_DATA_DIR


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
    monkeypatch.setattr(data, "download_fashion_mnist", functools.partial(
        download_fashion_mnist, base_url=f"http://127.0.0.1:{closed_port()}/", timeout=5))
    with pytest.raises(DatasetError, match=r"could not download.*") as info:
        load_fashion_mnist(cache_dir=tmp_path / "cache")
    assert str(tmp_path / "shared-data") in str(info.value)


# --------------------------------------------------------------------------- CSV


def csv_text(labels, images, header=True) -> str:
    lines = ["label," + ",".join(f"pixel{i}" for i in range(1, 785))] if header else []
    lines += [",".join(map(str, [label, *row])) for label, row in zip(labels, images, strict=True)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("header", [True, False])
def test_load_csv_reads_rows_with_or_without_header(tmp_path, header):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 784), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1, 2, 5], dtype=np.uint8)
    path = tmp_path / "fashion-mnist_train.csv"
    path.write_text(csv_text(labels, images, header=header))

    loaded_images, loaded_labels = load_csv(path)
    assert loaded_images.dtype == np.uint8 and loaded_labels.dtype == np.uint8
    assert loaded_images.shape == (7, 784) and loaded_labels.shape == (7,)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_csv_handles_more_rows_than_one_parsing_block(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_CSV_BLOCK_LINES", 4)
    images = np.random.default_rng(2).integers(0, 256, (11, 784), dtype=np.uint8)
    labels = (np.arange(11) % 10).astype(np.uint8)
    path = tmp_path / "mnist.csv"
    path.write_text(csv_text(labels, images).replace("\n", "\r\n", 3) + "\n\n")
    loaded_images, loaded_labels = load_csv(path)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_csv_names_the_line_with_the_wrong_column_count(tmp_path):
    images = np.zeros((4, 784), dtype=np.uint8)
    lines = csv_text([1, 2, 3, 4], images).splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # data row 3 is file line 4 (after the header)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: line 4: expected 785 .*found 784"):
        load_csv(path)


def test_load_csv_rejects_out_of_range_pixel(tmp_path):
    images = np.zeros((3, 784), dtype=np.int64)
    images[1, 9] = 256
    path = tmp_path / "bad.csv"
    path.write_text(csv_text([0, 1, 2], images, header=False))
    with pytest.raises(DatasetError, match=r"bad\.csv: line 2: pixel10=256 is out of range 0-255"):
        load_csv(path)


def test_load_csv_does_not_mistake_a_bad_first_row_for_a_header(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(csv_text([-1, 2], np.zeros((2, 784), dtype=np.uint8), header=False))
    with pytest.raises(DatasetError, match=r"line 1: label"):
        load_csv(path)


def test_load_csv_rejects_out_of_range_label(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(csv_text([0, 10], np.zeros((2, 784), dtype=np.uint8)))
    with pytest.raises(DatasetError, match=r"line 3: label=10 is out of range 0-9"):
        load_csv(path)


@pytest.mark.parametrize("value", ["1.5", "x", "", "-1", "70000"])
def test_load_csv_rejects_non_integer_or_negative_values(tmp_path, value):
    text = csv_text([0, 1], np.zeros((2, 784), dtype=np.uint8), header=False)
    lines = text.splitlines()
    fields = lines[1].split(",")
    fields[5] = value
    lines[1] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match=r"bad\.csv: line 2: pixel5"):
        load_csv(path)


CSV_HEADER = "label," + ",".join(f"pixel{i}" for i in range(1, 785))


@pytest.mark.parametrize("content", ["", "\n\n", CSV_HEADER + "\n"])
def test_load_csv_rejects_files_without_data(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=r"empty\.csv"):
        load_csv(path)


def test_load_fashion_mnist_from_csv_is_cached(tmp_path):
    rng = np.random.default_rng(3)
    train_images = rng.integers(0, 256, (30, 784), dtype=np.uint8)
    test_images = rng.integers(0, 256, (10, 784), dtype=np.uint8)
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    train_csv.write_text(csv_text(np.arange(30) % 10, train_images))
    test_csv.write_text(csv_text(np.arange(10) % 10, test_images, header=False))

    raw = load_fashion_mnist(csv_train=train_csv, csv_test=test_csv, cache_dir=tmp_path / "cache")
    assert isinstance(raw.train_images, np.memmap)
    np.testing.assert_array_equal(raw.train_images, train_images)
    np.testing.assert_array_equal(raw.test_images, test_images)
    np.testing.assert_array_equal(raw.train_labels, np.arange(30) % 10)
    assert len(list((tmp_path / "cache").glob("*csv*.npy"))) == 4

    with pytest.raises(DatasetError, match="both"):
        load_fashion_mnist(csv_train=train_csv, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- loading small IDX files


def test_load_flattens_caches_and_memory_maps(tmp_path, monkeypatch):
    source = tmp_path / "source"
    arrays = write_idx_dataset(source, n_train=20, n_test=10)
    cache = tmp_path / "cache"

    raw = load_fashion_mnist(source, cache_dir=cache, download=False)
    assert isinstance(raw, RawDataset)
    for role in ("train_images", "train_labels", "test_images", "test_labels"):
        array = getattr(raw, role)
        assert isinstance(array, np.memmap), role
        assert array.dtype == np.uint8
        expected = arrays[role].reshape(20 if role.startswith("train") else 10, -1).squeeze()
        np.testing.assert_array_equal(array, expected)
    assert raw.train_images.shape == (20, 784)
    assert not raw.train_images.flags.writeable
    assert len(list(cache.glob("*.npy"))) == 4
    assert not [p for p in cache.iterdir() if p.suffix != ".npy"]  # no temp files left behind

    # Same process, same sources: the very same object, no parsing at all.
    def must_not_parse(path, **kwargs):
        raise AssertionError(f"parsed {path} again")
    monkeypatch.setattr(data, "parse_idx", must_not_parse)
    assert load_fashion_mnist(source, cache_dir=cache, download=False) is raw
    # New process (memo cleared): served from the .npy cache.
    data.clear_memo()
    again = load_fashion_mnist(source, cache_dir=cache, download=False)
    assert again is not raw
    np.testing.assert_array_equal(again.train_images, raw.train_images)


def test_cache_is_invalidated_when_a_source_file_changes(tmp_path):
    source, cache = tmp_path / "source", tmp_path / "cache"
    write_idx_dataset(source, seed=0)
    first = np.array(load_fashion_mnist(source, cache_dir=cache, download=False).train_images)

    new_arrays = write_idx_dataset(source, seed=1)  # same sizes, new content
    stat = (source / "train-images-idx3-ubyte.gz").stat()
    os.utime(source / "train-images-idx3-ubyte.gz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    data.clear_memo()
    second = load_fashion_mnist(source, cache_dir=cache, download=False)
    np.testing.assert_array_equal(second.train_images, new_arrays["train_images"].reshape(20, 784))
    assert not np.array_equal(first, second.train_images)
    assert len(list(cache.glob("*.npy"))) == 4  # the stale entry was removed


def test_damaged_cache_is_rebuilt(tmp_path):
    source, cache = tmp_path / "source", tmp_path / "cache"
    arrays = write_idx_dataset(source)
    load_fashion_mnist(source, cache_dir=cache, download=False)
    for npy in cache.glob("*train_images.npy"):
        npy.write_bytes(b"\x93NUMPY garbage")
    data.clear_memo()
    raw = load_fashion_mnist(source, cache_dir=cache, download=False)
    np.testing.assert_array_equal(raw.train_images, arrays["train_images"].reshape(20, 784))


def test_cache_dir_defaults_to_tuner_cache_dir(tmp_path, monkeypatch):
    source = tmp_path / "source"
    write_idx_dataset(source)
    monkeypatch.setenv("TUNER_CACHE_DIR", str(tmp_path / "from-env"))
    load_fashion_mnist(source, download=False)
    assert len(list((tmp_path / "from-env").glob("*.npy"))) == 4


def test_load_rejects_image_label_count_mismatch(tmp_path):
    source = tmp_path / "source"
    write_idx_dataset(source, n_train=10, n_train_labels=9)
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: 9 labels.*10 images"):
        load_fashion_mnist(source, cache_dir=tmp_path / "cache", download=False)


def test_load_rejects_wrong_image_size(tmp_path):
    source = tmp_path / "source"
    write_idx_dataset(source)
    write_idx(source / "t10k-images-idx3-ubyte.gz", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: expected 28x28 images, found 32x32"):
        load_fashion_mnist(source, cache_dir=tmp_path / "cache", download=False)


def test_load_rejects_labels_outside_the_ten_classes(tmp_path):
    source = tmp_path / "source"
    write_idx_dataset(source)
    write_idx(source / "t10k-labels-idx1-ubyte.gz", np.full(10, 10, np.uint8))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz: label 10"):
        load_fashion_mnist(source, cache_dir=tmp_path / "cache", download=False)


# --------------------------------------------------------------------------- real data


def read_uncompressed_checksums() -> dict[str, str]:
    lines = (SHARED_DIR / "SHA256SUMS.uncompressed").read_text().splitlines()
    return {line.split()[1]: line.split()[0] for line in lines if line.strip()}


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    """The real files, parsed once into a private cache: (raw, cache_dir)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent")
    cache = tmp_path_factory.mktemp("real-cache")
    data.clear_memo()
    return load_fashion_mnist(SHARED_DIR, cache_dir=cache, download=False), cache


def test_real_data_shapes_labels_and_mmap(real_data):
    raw, _ = real_data
    assert raw.train_images.shape == (60000, 784) and raw.test_images.shape == (10000, 784)
    assert raw.train_labels.shape == (60000,) and raw.test_labels.shape == (10000,)
    for array in (raw.train_images, raw.train_labels, raw.test_images, raw.test_labels):
        assert isinstance(array, np.memmap)
        assert array.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(raw.train_labels, minlength=10), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(raw.test_labels, minlength=10), np.full(10, 1000))
    assert len(CLASS_NAMES) == 10 and CLASS_NAMES[0] == "T-shirt/top" and CLASS_NAMES[9] == "Ankle boot"


def test_real_data_matches_the_published_uncompressed_checksums(real_data):
    raw, _ = real_data
    expected = read_uncompressed_checksums()
    for role, name in data.IDX_FILES.items():
        array = getattr(raw, role)
        shape = (len(array), 28, 28) if array.ndim == 2 else array.shape
        header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
        assert hashlib.sha256(header + array.tobytes()).hexdigest() == expected[name], name


def test_real_data_warm_load_comes_from_the_cache(real_data, monkeypatch):
    raw, cache = real_data
    data.clear_memo()

    def must_not_parse(path, **kwargs):
        raise AssertionError(f"parsed {path} although the cache is warm")
    monkeypatch.setattr(data, "parse_idx", must_not_parse)
    started = time.perf_counter()
    warm = load_fashion_mnist(SHARED_DIR, cache_dir=cache, download=False)
    elapsed = time.perf_counter() - started
    assert isinstance(warm.train_images, np.memmap)
    np.testing.assert_array_equal(warm.test_labels, raw.test_labels)
    assert elapsed < 0.25  # typically a few ms; generous for loaded CI machines


def test_real_data_full_prepare(real_data):
    raw, _ = real_data
    dataset = prepare_dataset(raw, validation_fraction=0.1, seed=0)
    assert dataset.x_train.shape == (54000, 784) and dataset.x_val.shape == (6000, 784)
    assert dataset.x_test.shape == (10000, 784)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(dataset.y_val, minlength=10), np.full(10, 600))
    # Reference statistics from a pixel-value histogram (a different method from the module's).
    histogram = sum(np.bincount(block.ravel(), minlength=256)
                    for block in np.array_split(dataset.x_train, 20))
    values = np.arange(256, dtype=np.float64)
    mean = (histogram * values).sum() / histogram.sum()
    std = np.sqrt((histogram * (values - mean) ** 2).sum() / histogram.sum())
    assert dataset.mean == pytest.approx(mean, rel=1e-12)
    assert dataset.std == pytest.approx(std, rel=1e-12)
    assert 60 < dataset.mean < 80 and 80 < dataset.std < 100  # the well-known Fashion-MNIST values


# --------------------------------------------------------------------------- stratified_split


def unbalanced_labels() -> np.ndarray:
    counts = [500, 37, 120, 9, 250, 1, 60, 333, 80, 45]
    return np.random.default_rng(7).permutation(np.repeat(np.arange(10), counts)).astype(np.uint8)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_stratified_split_is_a_stratified_partition(fraction):
    labels = unbalanced_labels()
    train, val = stratified_split(labels, fraction, seed=3)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # documented: sorted
    counts = np.bincount(labels, minlength=10)
    val_counts = np.bincount(labels[val], minlength=10)
    assert np.all(np.abs(val_counts - counts * fraction) <= 1)
    np.testing.assert_array_equal(val_counts, np.floor(counts * fraction + 0.5))


def test_stratified_split_is_deterministic_per_seed():
    labels = unbalanced_labels()
    first_train, first_val = stratified_split(labels, 0.2, seed=11)
    again_train, again_val = stratified_split(labels, 0.2, seed=11)
    np.testing.assert_array_equal(first_train, again_train)
    np.testing.assert_array_equal(first_val, again_val)
    _, other_val = stratified_split(labels, 0.2, seed=12)
    assert not np.array_equal(first_val, other_val)


def test_stratified_split_rejects_bad_fraction():
    with pytest.raises(DatasetError, match="validation_fraction"):
        stratified_split(np.zeros(10, np.uint8), 1.0, seed=0)


# --------------------------------------------------------------------------- prepare_dataset


def test_normalisation_statistics_come_from_the_training_split_only():
    # Class 0 images are all 200, all others 0; validation takes a class-stratified 50%,
    # so pooling val with train would not change the mean -- but test images are all 255
    # and val images of class 1 are made 255 below, which would if included.
    n = 100
    labels = (np.arange(n) % 2).astype(np.uint8)
    images = np.where(labels[:, None] == 0, 200, 0).astype(np.uint8) * np.ones((1, 784), np.uint8)
    train_idx, val_idx = stratified_split(labels, 0.5, seed=5)
    images[val_idx[labels[val_idx] == 1]] = 255
    raw = RawDataset(images, labels, np.full((10, 784), 255, np.uint8), (np.arange(10) % 2).astype(np.uint8))

    dataset = prepare_dataset(raw, validation_fraction=0.5, seed=5)
    np.testing.assert_array_equal(dataset.x_train, images[train_idx])
    assert dataset.mean == pytest.approx(100.0)  # half 200, half 0
    assert dataset.std == pytest.approx(100.0)
    assert dataset.x_val.max() == 255  # the val rows exist; they were just not counted


def test_prepare_with_train_size_takes_a_stratified_subset():
    raw = synthetic_raw_dataset(n_train=2000, n_test=50, seed=1)
    dataset = prepare_dataset(raw, validation_fraction=0.1, seed=4, train_size=1000)
    assert len(dataset.x_train) == 900 and len(dataset.x_val) == 100
    assert len(dataset.y_train) == 900 and len(dataset.y_val) == 100
    np.testing.assert_array_equal(np.bincount(dataset.y_val, minlength=10), np.full(10, 10))
    np.testing.assert_array_equal(np.bincount(dataset.y_train, minlength=10), np.full(10, 90))
    assert dataset.x_test.shape == (50, 784)  # test set is never subsampled
    # The rows are real rows of the raw training set with matching labels.
    rows = {row.tobytes(): label for row, label in zip(raw.train_images, raw.train_labels, strict=True)}
    assert all(rows[row.tobytes()] == label
               for row, label in zip(dataset.x_train, dataset.y_train, strict=True))


def test_prepare_train_size_total_is_exact_for_unbalanced_classes():
    labels = unbalanced_labels()
    raw = RawDataset(np.zeros((len(labels), 784), np.uint8), labels,
                     np.zeros((3, 784), np.uint8), np.zeros(3, np.uint8))
    dataset = prepare_dataset(raw, validation_fraction=0.2, seed=0, train_size=517)
    assert len(dataset.y_train) + len(dataset.y_val) == 517


def test_prepare_is_deterministic_and_seed_dependent():
    raw = synthetic_raw_dataset(n_train=500, n_test=20)
    first = prepare_dataset(raw, validation_fraction=0.2, seed=1, train_size=300)
    again = prepare_dataset(raw, validation_fraction=0.2, seed=1, train_size=300)
    other = prepare_dataset(raw, validation_fraction=0.2, seed=2, train_size=300)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.x_train, other.x_train)


def test_prepare_rejects_train_size_larger_than_available():
    raw = synthetic_raw_dataset(n_train=100, n_test=10)
    with pytest.raises(DatasetError, match="train_size=101.*100"):
        prepare_dataset(raw, validation_fraction=0.1, seed=0, train_size=101)


def test_normalize_gives_float32_standardised_training_pixels():
    dataset = prepare_dataset(synthetic_raw_dataset(), validation_fraction=0.1, seed=0)
    assert dataset.class_names == CLASS_NAMES
    normalised = dataset.normalize(dataset.x_train)
    assert normalised.dtype == np.float32 and normalised.shape == dataset.x_train.shape
    assert abs(float(normalised.mean(dtype=np.float64))) < 1e-4
    assert float(normalised.std(dtype=np.float64)) == pytest.approx(1.0, abs=1e-4)

    out = np.empty((5, 784), np.float32)
    result = dataset.normalize(dataset.x_val[:5], out=out)
    assert result is out
    expected = (dataset.x_val[:5].astype(np.float64) - dataset.mean) / dataset.std
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_synthetic_raw_dataset_shapes_and_balance():
    raw = synthetic_raw_dataset(n_train=600, n_test=100, seed=0)
    assert raw.train_images.shape == (600, 784) and raw.train_images.dtype == np.uint8
    assert raw.test_images.shape == (100, 784) and raw.test_labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(raw.train_labels, minlength=10), np.full(10, 60))
    # Learnable: the nearest class mean classifies the test set almost perfectly.
    means = np.stack([raw.train_images[raw.train_labels == c].mean(axis=0) for c in range(10)])
    distances = ((raw.test_images[:, None, :].astype(np.float32) - means[None]) ** 2).sum(axis=2)
    assert (distances.argmin(axis=1) == raw.test_labels).mean() > 0.9
