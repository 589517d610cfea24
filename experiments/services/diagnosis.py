"""Diagnosis while the run trains: after every stored epoch the recommender's live checks
(experiments/recommender/live_diagnosis.py) look at the epochs so far; new findings are appended
to `Experiment.diagnoses` (lease-checked, each kind once) and published as `diagnosis` events.

A run with `stop_on_diagnosis` stops at its first critical finding: a divergence (or critical
exploding gradients) ends it `diverged`, as the trainer's own divergence check does; any other
critical finding ends it like the trainer's early stopping (`succeeded`, tested on the weights
it has), and its message says why: "stopped at epoch 3: loss became NaN; lower the learning rate".
A sweep trial with diagnostic pruning is pruned instead (services/sweeps.py).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from django.db import transaction

from experiments import events, live
from experiments.errors import LeaseLost
from experiments.models import EpochMetric, Experiment
from experiments.recommender.live_diagnosis import (
    Finding,
    SweepContext,
    diagnose_epoch,
    diagnose_sweep_trial,
    diagnose_trainer_divergence,
    first_critical,
)
from training.data import Dataset
from training.trainer import METRIC_FIELDS, FitResult, Outcome, evaluate_on_test_set

logger = logging.getLogger(__name__)

Status = Experiment.Status
# Critical findings that end a stopped run `diverged`; the others end it like an early stop.
DIVERGED_KINDS = frozenset({"divergence", "exploding_gradients"})


def _epochs(experiment_id: int) -> list[dict[str, Any]]:
    return list(EpochMetric.objects.filter(experiment_id=experiment_id).order_by("epoch")
                .values("epoch", *METRIC_FIELDS))


def _store(*, experiment_id: int, lease: int, findings: list[Finding]) -> list[dict[str, Any]]:
    """Append the findings whose kind the run has not stored yet; the appended ones."""
    with transaction.atomic():
        row = (Experiment.objects.select_for_update().filter(pk=experiment_id, attempts=lease,
                                                              status=Status.RUNNING)
               .values("diagnoses", "owner_id").first())
        if row is None:
            raise LeaseLost(f"experiment {experiment_id}: lease {lease} is no longer current")
        stored = list(row["diagnoses"] or [])
        known = {item.get("kind") for item in stored if isinstance(item, dict)}
        new = [finding.to_dict() for finding in findings if finding.kind not in known]
        if new:
            Experiment.objects.filter(pk=experiment_id).update(diagnoses=stored + new)
    for item in new:
        events.publish(experiment_id, row["owner_id"], live.diagnosis_event(item))
    return new


def experiment_diagnose_epoch(*, experiment_id: int, lease: int, config: dict[str, Any],
                              stop_on_diagnosis: bool) -> Finding | None:
    """After an epoch was stored: record and publish new findings; the critical finding to stop
    on when the run asked for it (`stop_on_diagnosis`), else None.

    Two small reads per epoch (the run's epochs), a write only when something new was found.
    A bug in the checks never breaks the run (logged); a lost lease does (LeaseLost).
    """
    try:
        findings = diagnose_epoch(config, _epochs(experiment_id))
    except Exception:  # noqa: BLE001 - the diagnosis is secondary to the training
        logger.exception("experiment %s: live diagnosis failed; the run goes on", experiment_id)
        return None
    if findings:
        _store(experiment_id=experiment_id, lease=lease, findings=findings)
    critical = first_critical(findings)
    return critical if stop_on_diagnosis else None


def _best_so_far(record: Any) -> float | None:
    """What another trial counts for in diagnostic pruning: a succeeded trial's best val accuracy, a
    running one's best epoch yet; nothing for the others (pruned, diverged, failed, queued, warm-start
    imports: none of those is a result of this sweep)."""
    if record.warm:
        return None
    if record.status == Status.SUCCEEDED:
        return record.best_val_accuracy
    if record.status == Status.RUNNING:
        return max(record.intermediate.values(), default=None)
    return None


def sweep_trial_diagnose(*, experiment_id: int, current: Any, records: list, epoch: int) -> Finding | None:
    """Diagnostic pruning's sweep-only diagnosis of a trial after `epoch` (records: the sweep's
    search.records.TrialRecord, `current` among them): the critical finding to prune it with, or None.
    The sweep context is the best val accuracy another usable trial has reached so far."""
    context = SweepContext.of((r.number, _best_so_far(r)) for r in records if r.number != current.number)
    if context is None:
        return None
    epochs = [row for row in _epochs(experiment_id) if row["epoch"] <= epoch]
    return diagnose_sweep_trial(current.config, epochs, context)


def experiment_diagnose_trainer_divergence(*, experiment_id: int, lease: int, config: dict[str, Any],
                                           detail: str) -> Finding:
    """The trainer stopped the run as diverged inside an epoch (no epoch reached the callback):
    the divergence finding, stored and published unless the run already has one."""
    finding = diagnose_trainer_divergence(config, _epochs(experiment_id), detail)
    stored = Experiment.objects.filter(pk=experiment_id).values_list("diagnoses", flat=True).first() or []
    existing = next((item for item in stored if isinstance(item, dict) and item.get("kind") == "divergence"), None)
    if existing is not None:
        return Finding(**{key: existing[key] for key in ("epoch", "kind", "severity", "title", "message")},
                       changes=existing.get("changes") or {}, evidence=existing.get("evidence") or {})
    try:
        _store(experiment_id=experiment_id, lease=lease, findings=[finding])
    except LeaseLost:
        pass  # not ours any more: finishing will say so
    return finding


def diagnosis_stop_status(finding: Finding) -> str:
    """The final status of a run its diagnosis stopped."""
    return Status.DIVERGED if finding.kind in DIVERGED_KINDS else Status.SUCCEEDED


def fit_result_early_stopped(result: FitResult, data: Dataset) -> FitResult:
    """A training its diagnosis stopped (the trainer saw a cancel) made an early stop: tested on
    the weights it has, as the trainer's own early stopping is, so it keeps its weights too."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        test_loss, test_accuracy, matrix, per_class = evaluate_on_test_set(result.network, data)
    return dataclasses.replace(result, outcome=Outcome.EARLY_STOPPED, test_accuracy=test_accuracy,
                               test_loss=test_loss, confusion_matrix=matrix, per_class_accuracy=per_class)
