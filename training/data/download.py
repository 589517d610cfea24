"""Download the four official .gz files, each checked against its published SHA-256.

A file is streamed to a temporary name next to its destination and renamed into place
only once verified: an interrupted or corrupt download never leaves a partial file
under the real name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from training.data.idx import IDX_FILES
from training.data.raw import FILE_MODE, DatasetError

OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# SHA-256 of the official .gz files (the ones download_fashion_mnist fetches).
GZ_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

_DOWNLOAD_CHUNK = 1 << 20


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
        os.chmod(tmp_path, FILE_MODE)
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
