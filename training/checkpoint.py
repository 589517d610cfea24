"""Where the trainer keeps its checkpoint: a small interface, so the library needs no Django.

`fit(checkpoint=...)` takes a path (a local `.npz` file, written atomically) or any object
with `save(data: bytes)` and `load() -> bytes | None` (`CheckpointStore`): the server passes
one backed by its artifact storage (the filesystem or an S3-compatible object store). A store
must replace the whole checkpoint in one step (no reader ever sees half of one) and `load`
must return the latest complete checkpoint, or None when there is none.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class CheckpointStore(Protocol):
    def save(self, data: bytes) -> None:
        """Replace the stored checkpoint with `data`, all at once."""

    def load(self) -> bytes | None:
        """The latest complete checkpoint, or None when there is none."""


class FileCheckpoint:
    """A checkpoint in a local file: written to a unique temporary beside it, then renamed
    over it (atomic on POSIX), so a crash mid-write leaves the previous checkpoint intact."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def save(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:12]}.tmp.npz")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def __str__(self) -> str:
        return str(self.path)


def checkpoint_store(checkpoint: str | Path | CheckpointStore | None) -> CheckpointStore | None:
    """`fit`'s checkpoint argument as a store: a path becomes a FileCheckpoint."""
    if checkpoint is None or checkpoint == "":
        return None
    if isinstance(checkpoint, (str, Path)):
        return FileCheckpoint(checkpoint)
    if isinstance(checkpoint, CheckpointStore):
        return checkpoint
    raise TypeError(f"checkpoint must be a path or have save(bytes)/load(), not {type(checkpoint).__name__}")
