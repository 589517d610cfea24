"""A run's files in the artifact storage and what they cost its owner.

In the artifact storage (experiments/storage.py: TUNER_ARTIFACT_DIR, or an S3-compatible
bucket) a run has at most two files: `checkpoints/experiment-<id>.npz`
(weights, optimizer state and RNG after the last epoch: what a re-delivered or handed-back
run resumes from) and `weights/experiment-<id>.npz` (the final network, for inference).
A checkpoint is only useful while the run may still train, so it is deleted when the run
ends, whatever way (`on_run_ended`, the first lifecycle subscriber); the weights stay until
the run is deleted. Their sizes are kept on the row (`checkpoint_bytes`, `weights_bytes`),
and the sum over a user's runs is capped by TUNER_MAX_STORAGE_BYTES_PER_USER (`storage_check`,
called whenever a run is created). `artifacts_prune` (the `prune_artifacts` command) removes
what a crash or a deleted row left behind and re-measures every row.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from experiments import selectors, storage
from experiments.errors import StorageLimitExceeded
from experiments.models import Experiment
from training.config import TrainingConfig

logger = logging.getLogger(__name__)

Status = Experiment.Status

KINDS = storage.KINDS  # the "directories" of the artifact storage holding run files
RUN_FILE = re.compile(r"^experiment-(\d+)\.npz$")
BYTES_PER_PARAMETER = 4  # float32
TEMPORARY_MAX_AGE_SECONDS = 3600  # a *.tmp* file older than this is a leftover, not a write in progress


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB' (binary units, one decimal; plain bytes below 1 KiB)."""
    value, unit = float(size), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, larger
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def file_size(path: str | Path) -> int:
    """The size of a run's file (a row's `checkpoint_path`/`weights_path`: a storage name) in the
    artifact storage; 0 when there is none (or no name)."""
    return storage.size(storage.name_of(str(path or "")))


# --------------------------------------------------------------------------- a run's end


def on_run_ended(experiment: Experiment) -> None:
    """lifecycle subscriber: the run will not train again, so its checkpoint goes (the final
    weights stay) and the sizes on its row say what is left. Idempotent, and a no-op for a run
    that is active again by the time it is called (a retried trial, training again)."""
    row = Experiment.objects.filter(pk=experiment.pk, status__in=Experiment.FINISHED_STATUSES).values(
        "checkpoint_path", "weights_path").first()
    if row is None:
        return
    storage.delete(storage.name_of(row["checkpoint_path"]))
    experiment.checkpoint_bytes, experiment.weights_bytes = 0, file_size(row["weights_path"])
    Experiment.objects.filter(pk=experiment.pk, status__in=Experiment.FINISHED_STATUSES).update(
        checkpoint_bytes=0, weights_bytes=experiment.weights_bytes)


# --------------------------------------------------------------------------- the per-user limit


def estimated_weights_bytes(config: TrainingConfig) -> int:
    """The final weights file of a run with `config`: its parameters as float32 (plus a few
    hundred bytes of file headers, not counted)."""
    return config.parameter_count * BYTES_PER_PARAMETER


def storage_check(*, owner, config: TrainingConfig | None = None) -> None:
    """Refuse a new run (StorageLimitExceeded) when `owner`'s runs already store
    TUNER_MAX_STORAGE_BYTES_PER_USER bytes or more, or when the final weights of a run with
    `config` would alone exceed it. 0 means unlimited. A soft limit: the runs admitted below
    it may take the total above it, by their own weights at most."""
    limit = settings.TUNER_MAX_STORAGE_BYTES_PER_USER
    if not limit:
        return
    used = selectors.storage_used_bytes(user=owner)
    if config is not None and (needed := estimated_weights_bytes(config)) > limit:
        raise StorageLimitExceeded(
            f"This run's final weights alone would take about {human_bytes(needed)} "
            f"({config.parameter_count:,} parameters × {BYTES_PER_PARAMETER} bytes), more than your storage "
            f"limit of {human_bytes(limit)} (your runs use {human_bytes(used)}). Use a smaller network.")
    if used >= limit:
        raise StorageLimitExceeded(
            f"Your runs store {human_bytes(used)} of weights and checkpoints, reaching your storage limit of "
            f"{human_bytes(limit)}. Delete runs you no longer need, then try again.")


# --------------------------------------------------------------------------- pruning


@dataclass
class PruneReport:
    """What `artifacts_prune` deleted (or would delete) and which rows' sizes it corrected."""

    deleted: list[tuple[str, int, str]] = field(default_factory=list)  # (storage name, bytes, why)
    corrected: list[tuple[int, dict[str, tuple[int, int]]]] = field(default_factory=list)  # (run, {field: (old, new)})

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size, _ in self.deleted)


def _doomed(kind: str, name: str, modified: float, statuses: dict[int, str], *, now: float) -> str:
    """Why the file `name` (last modified at `modified`) should go, or "" to keep it."""
    basename = name.rpartition("/")[2]
    if ".tmp" in basename:
        age = now - modified
        return f"temporary file {age / 3600:.1f} h old" if age > TEMPORARY_MAX_AGE_SECONDS else ""
    match = RUN_FILE.match(basename)
    if match is None:
        return ""  # not a run file: not ours to judge
    run_id = int(match[1])
    if run_id not in statuses:
        return f"run #{run_id} no longer exists"
    if kind == "checkpoints" and statuses[run_id] in Experiment.FINISHED_STATUSES:
        return f"checkpoint of run #{run_id}, which ended ({statuses[run_id]})"
    return ""


def artifacts_prune(*, dry_run: bool = False) -> PruneReport:
    """Delete the files no run needs under {checkpoints,weights}/ of the artifact storage (other
    directories, like a dataset cache kept there, are never touched): files of runs whose row
    is gone, checkpoints of runs that ended, `*.tmp*` leftovers older than an hour. Then make
    every row's `checkpoint_bytes`/`weights_bytes` match its files. `dry_run` only reports."""
    report = PruneReport()
    now = time.time()
    files = [(kind, name) for kind in KINDS for name in storage.list_files(kind)]
    # Rows are read after the listing: a file cannot exist before its run's row does.
    ids = {int(m[1]) for _, name in files if (m := RUN_FILE.match(name.rpartition("/")[2]))}
    statuses = dict(Experiment.objects.filter(pk__in=ids).values_list("pk", "status"))
    for kind, name in files:
        info = storage.stat(name)
        if info is None:
            continue  # gone meanwhile (a temporary renamed into place, a run deleted)
        size, modified = info
        reason = _doomed(kind, name, modified, statuses, now=now)
        if reason and not dry_run:
            storage.delete(name)
        if reason:
            report.deleted.append((name, size, reason))
    rows = Experiment.objects.values_list("pk", "status", "checkpoint_path", "weights_path", "checkpoint_bytes",
                                          "weights_bytes")
    for run_id, status, checkpoint_path, weights_path, checkpoint_bytes, weights_bytes in rows.iterator():
        finished = status in Experiment.FINISHED_STATUSES
        actual = {"checkpoint_bytes": 0 if finished else file_size(checkpoint_path),
                  "weights_bytes": file_size(weights_path)}
        changes = {name: (old, actual[name]) for name, old in
                   (("checkpoint_bytes", checkpoint_bytes), ("weights_bytes", weights_bytes)) if old != actual[name]}
        if not changes:
            continue
        report.corrected.append((run_id, changes))
        if not dry_run:
            Experiment.objects.filter(pk=run_id, status=status).update(**actual)
    if not dry_run and (report.deleted or report.corrected):
        logger.info("prune_artifacts: deleted %d file(s), %d bytes; corrected %d run(s)", len(report.deleted),
                    report.freed_bytes, len(report.corrected))
    return report
