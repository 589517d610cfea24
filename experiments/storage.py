"""A run's files (checkpoint, final weights) in the artifact storage: Django's storage API.

`STORAGES["artifacts"]` (tuner_site/settings.py) is the filesystem under TUNER_ARTIFACT_DIR by
default, or an S3-compatible bucket (django-storages' S3Storage) with TUNER_ARTIFACT_STORAGE=s3,
so a worker on another machine needs no shared disk. Rows store *names* in that storage
(`checkpoints/experiment-<id>.npz`, `weights/experiment-<id>.npz`); rows written before, with an
absolute path under TUNER_ARTIFACT_DIR, map to the same names (`name_of`).

Writes are whole-object replacements: on the filesystem a unique temporary in the same directory
renamed over the name (atomic), on S3 one PUT of the complete object (the transfer config has no
multipart threshold below S3's 5 GB single-PUT limit), so a reader sees the old object or the new
one, never a torn one.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages

ALIAS = "artifacts"
KINDS = ("checkpoints", "weights")


def artifact_storage() -> Storage:
    return storages[ALIAS]


def artifact_name(kind: str, experiment_id: int) -> str:
    """The storage name of a run's `kind` ("checkpoints" or "weights") file."""
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}")
    return f"{kind}/experiment-{experiment_id}.npz"


def name_of(value: str) -> str:
    """A row's stored value as a storage name: names pass through; an absolute path (rows
    written before the storage API) under TUNER_ARTIFACT_DIR becomes its relative name; any
    other absolute path names nothing ("")."""
    if not value:
        return ""
    if not os.path.isabs(value):
        return value
    try:
        return PurePosixPath(Path(value).resolve().relative_to(Path(settings.TUNER_ARTIFACT_DIR).resolve())).as_posix()
    except ValueError:
        return ""


def _local_path(storage: Storage, name: str) -> Path | None:
    if isinstance(storage, FileSystemStorage):
        return Path(storage.path(name))
    return None


def save_bytes(name: str, data: bytes) -> None:
    """Replace the object `name` with `data` in one step (see the module docstring)."""
    storage = artifact_storage()
    path = _local_path(storage, name)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp.npz")  # never shared by two writers
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return
    saved = storage.save(name, ContentFile(data))
    if saved != name:  # an object store configured not to overwrite would invent another name
        storage.delete(saved)
        raise RuntimeError(f"artifact storage saved {name!r} as {saved!r}: set file_overwrite")


def _is_missing(exc: Exception) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = response.get("Error", {}).get("Code")
        return status == 404 or code in ("404", "NoSuchKey", "NotFound")
    return False


def read_bytes(name: str) -> bytes | None:
    """The whole object `name`, or None when there is none."""
    if not name:
        return None
    try:
        with artifact_storage().open(name, "rb") as handle:
            return handle.read()
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise


def open_file(name: str):
    """A binary file object of `name` (FileNotFoundError when there is none), for streaming."""
    if not name:
        raise FileNotFoundError("no artifact name")
    try:
        return artifact_storage().open(name, "rb")
    except Exception as exc:
        if _is_missing(exc):
            raise FileNotFoundError(name) from None
        raise


def size(name: str) -> int:
    """The size of `name`; 0 when there is none (or no name)."""
    if not name:
        return 0
    try:
        return artifact_storage().size(name)
    except Exception as exc:
        if _is_missing(exc):
            return 0
        raise


def stat(name: str) -> tuple[int, float] | None:
    """(size, modified time as a timestamp) of `name`, or None when there is none."""
    storage = artifact_storage()
    path = _local_path(storage, name)
    try:
        if path is not None:
            info = path.stat()
            return info.st_size, info.st_mtime
        modified: datetime = storage.get_modified_time(name)
        return storage.size(name), modified.timestamp()
    except Exception as exc:
        if _is_missing(exc) or isinstance(exc, NotADirectoryError):
            return None
        raise


def delete(name: str) -> None:
    """Delete `name` if it exists (no error otherwise)."""
    if name:
        artifact_storage().delete(name)


def list_files(kind: str) -> list[str]:
    """The names of the files directly under `kind`/ (sorted)."""
    storage = artifact_storage()
    path = _local_path(storage, kind)
    if path is not None and not path.is_dir():
        return []
    try:
        _, files = storage.listdir(kind)
    except FileNotFoundError:
        return []
    return sorted(f"{kind}/{file}" for file in files)


class StorageCheckpoint:
    """A run's checkpoint in the artifact storage, as the trainer's `CheckpointStore`
    (training/checkpoint.py): save = one whole-object replacement, load = the last complete one."""

    def __init__(self, name: str):
        self.name = name

    def save(self, data: bytes) -> None:
        save_bytes(self.name, data)

    def load(self) -> bytes | None:
        return read_bytes(self.name)

    def __str__(self) -> str:
        return f"{ALIAS}:{self.name}"
