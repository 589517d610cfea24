"""The worker's side of a run: claim, lease-checked writes, the trainer's callbacks, hand-back.

Work distribution in one paragraph: `experiment_create` stores a queued row and, once the
transaction commits, the broker gets `run_experiment(id)`. A worker *claims* the run with a
conditional UPDATE that bumps `attempts`; that number is its lease. Every later write
(epochs, the final result) checks the lease, so when Redis re-delivers a task whose worker
died, or delivers it twice, only the newest claimant writes, and it resumes from the last
checkpoint. A run whose deliveries keep dying ends `failed` after TUNER_MAX_ATTEMPTS claims.

A *hand-back* is graceful: a worker shutting down (SIGTERM, deploys), a broker connection
lost (Celery cancels the task with SIGTERM) or a database outage that outlasts the retries
stops the training at the next batch and puts the run back in the queue; it resumes from its
checkpoint on the next claim. Hand-backs are counted in `handbacks` and never use up one of
the TUNER_MAX_ATTEMPTS, which only crashes do (a delivery that never came back). The stop
request is scoped to the trainings running when it arrives: runs started later in the same
process are not affected.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from experiments import broker, events, live, live_sweeps, storage
from experiments.errors import LeaseLost
from experiments.faults import FINAL_COMMIT, fault_point
from experiments.models import EpochMetric, Experiment
from experiments.services.artifacts import file_size
from experiments.services.diagnosis import (
    diagnosis_stop_status,
    experiment_diagnose_epoch,
    experiment_diagnose_trainer_divergence,
    fit_result_early_stopped,
)
from experiments.services.inspection import misclassified_record
from experiments.services.lifecycle import run_end
from experiments.services.sweeps import sweep_trial_prune_check
from training.config import ConfigError, TrainingConfig
from training.data import CLASS_NAMES, DatasetError, load_fashion_mnist, prepare_dataset
from training.trainer import METRIC_FIELDS, CheckpointError, EpochMetrics, FitResult, Outcome, fit

logger = logging.getLogger(__name__)

Status = Experiment.Status

OUTCOME_STATUS = {
    Outcome.COMPLETED: Status.SUCCEEDED,
    Outcome.EARLY_STOPPED: Status.SUCCEEDED,
    Outcome.DIVERGED: Status.DIVERGED,
    Outcome.CANCELLED: Status.CANCELLED,
}
PROGRESS_EVENT_SECONDS = 0.5

DATABASE_ERRORS = (OperationalError, InterfaceError)

_prepared_cache: dict[tuple, Any] = {}
_training_now: set[RunMonitor] = set()  # the trainings of this process, for request_worker_stop
_training_lock = threading.Lock()


def request_worker_stop(reason: str = "worker shutting down") -> int:
    """Ask every training running in this process *now* to hand its run back at the next batch
    (the worker's SIGTERM: a deploy, or Celery cancelling tasks on a lost broker connection).
    Returns how many were asked. Trainings that start afterwards are not affected."""
    with _training_lock:
        for monitor in _training_now:
            monitor.request_handback(reason)
        return len(_training_now)


def with_db_retry(operation, *, retries: int | None = None):
    """Run `operation`; while the database refuses it, reconnect and retry with doubling waits
    (0.5 s, 1 s, 2 s, ... TUNER_DB_RETRIES times), then let the error through.

    Only outside a transaction (inside one, the whole transaction is gone and the caller's
    atomic block has to fail). The operations retried here are idempotent.
    """
    retries = settings.TUNER_DB_RETRIES if retries is None else retries
    for attempt in range(retries + 1):
        try:
            return operation()
        except DATABASE_ERRORS:
            if connection.in_atomic_block or attempt == retries:
                raise
            delay = 0.5 * 2 ** attempt
            logger.warning("database unavailable; reconnecting in %.1f s (retry %d of %d)", delay, attempt + 1,
                           retries, exc_info=attempt == 0)
            connection.close()
            time.sleep(delay)


def _dataset_for(config: TrainingConfig):
    """The run's split, reusing the process's parsed dataset (loaded once per worker process)."""
    key = (config.validation_fraction, config.seed, config.train_size)
    data = _prepared_cache.get(key)
    if data is None:
        raw = load_fashion_mnist()
        data = prepare_dataset(raw, validation_fraction=config.validation_fraction, seed=config.seed,
                               train_size=config.train_size)
        _prepared_cache.clear()  # keep one split: a full one is ~50 MB
        _prepared_cache[key] = data
    return data


def artifact_path(kind: str, experiment_id: int) -> str:
    """The run's `kind` file's name in the artifact storage (experiments/storage.py)."""
    return storage.artifact_name(kind, experiment_id)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- lease-checked writes


def experiment_claim(*, experiment_id: int, task_id: str = "", worker_host: str = "",
                     handed_back_lease: int | None = None) -> int | None:
    """Take the lease on a queued (or re-delivered running) run; its new `attempts` or None.

    A claim bumps `attempts` (the lease). Only crashes count against TUNER_MAX_ATTEMPTS:
    the limit applies to attempts - handbacks. `handed_back_lease` is set by a worker that
    had to hand the run back without reaching the database (an outage): if nobody claimed
    the run since, this claim continues it as a hand-back, not as a crash.

    None means there is nothing to do: the run finished, was cancelled, or was just
    marked failed because it exhausted its attempts.
    """
    now = timezone.now()
    max_attempts = settings.TUNER_MAX_ATTEMPTS
    claim = {"status": Status.RUNNING, "attempts": F("attempts") + 1, "started_at": Coalesce("started_at", now),
             "heartbeat_at": now, "worker_host": worker_host[:255], "task_id": task_id or F("task_id")}
    with transaction.atomic():
        claimed = 0
        if handed_back_lease is not None:
            claimed = Experiment.objects.filter(
                pk=experiment_id, status=Status.RUNNING, attempts=handed_back_lease, cancel_requested=False,
            ).update(**claim, handbacks=F("handbacks") + 1)
        if not claimed:
            claimed = Experiment.objects.filter(
                pk=experiment_id, status__in=Experiment.ACTIVE_STATUSES, cancel_requested=False,
                attempts__lt=F("handbacks") + max_attempts,
            ).update(**claim)
        row = Experiment.objects.filter(pk=experiment_id).values(
            "attempts", "handbacks", "status", "cancel_requested").first()
    if row is None:
        logger.info("experiment %s no longer exists; nothing to run", experiment_id)
        return None
    if claimed:
        return row["attempts"]
    if row["status"] == Status.RUNNING and row["cancel_requested"]:
        # The worker that ran it died after a cancel request: honour the cancel.
        run_end(experiment_id=experiment_id, status=Status.CANCELLED, only_if={"status": Status.RUNNING},
                message="cancelled (its worker stopped)")
    elif row["status"] in Experiment.ACTIVE_STATUSES and row["attempts"] - row["handbacks"] >= max_attempts:
        experiment_give_up(experiment_id=experiment_id)
    return None


def experiment_give_up(*, experiment_id: int) -> Experiment | None:
    """End a run whose deliveries kept dying (TUNER_MAX_ATTEMPTS crashes) as failed, freeing its slot."""
    row = Experiment.objects.filter(pk=experiment_id).values("attempts", "handbacks").first()
    if row is None:
        return None
    crashes = row["attempts"] - row["handbacks"]
    return run_end(
        experiment_id=experiment_id, status=Status.FAILED,
        only_if={"status__in": Experiment.ACTIVE_STATUSES, "attempts": row["attempts"]},
        error_message=f"gave up after {crashes} attempts: the worker running it stopped each time "
                      "(out of memory or killed?)")


def _holding(lease: int) -> dict[str, Any]:
    """The filter that matches a run only while `lease` is its current one."""
    return {"attempts": lease, "status": Status.RUNNING}


def experiment_record_epoch(*, experiment_id: int, lease: int, metrics: EpochMetrics) -> EpochMetric:
    """Upsert one epoch's metrics (idempotent by epoch), then publish it.

    The row also records the checkpoint's size on disk (the trainer writes the epoch's
    checkpoint right after this, so it is the previous epoch's; the size barely changes).
    """
    values = {name: float(getattr(metrics, name)) for name in METRIC_FIELDS}
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(pk=experiment_id, **_holding(lease)).first()
        if experiment is None:
            raise LeaseLost(f"experiment {experiment_id}: lease {lease} is no longer current")
        row, _ = EpochMetric.objects.update_or_create(
            experiment_id=experiment_id, epoch=metrics.epoch, defaults=values)
        best = experiment.best_val_accuracy
        update: dict[str, Any] = {"epochs_done": metrics.epoch, "heartbeat_at": timezone.now(),
                                  "checkpoint_bytes": file_size(experiment.checkpoint_path)}
        if best is None or metrics.val_accuracy > best or experiment.best_epoch == metrics.epoch:
            update.update(best_val_accuracy=metrics.val_accuracy, best_epoch=metrics.epoch)
        Experiment.objects.filter(pk=experiment_id).update(**update)
    events.publish(experiment_id, experiment.owner_id,
                   live.epoch_event(values, epoch=metrics.epoch, epochs=experiment.config.get("epochs")))
    live_sweeps.publish_trial_epoch(experiment, epoch=metrics.epoch, val_accuracy=values["val_accuracy"])
    return row


def experiment_finish(*, experiment_id: int, lease: int, result: FitResult, status: str | None = None) -> Experiment:
    """Store the run's outcome and test results (lease-checked), then announce it.

    `status` overrides the outcome's: a sweep trial its pruner stopped ends "pruned".
    """
    status = status or OUTCOME_STATUS[result.outcome]
    if not Experiment.objects.filter(pk=experiment_id, **_holding(lease)).exists():
        # Checked before touching the weights file: a stale delivery must not replace the
        # weights the current lease holder stored (or is storing).
        raise LeaseLost(f"experiment {experiment_id}: lease {lease} is no longer current")
    weights_path = ""
    if result.outcome in (Outcome.COMPLETED, Outcome.EARLY_STOPPED):
        name = artifact_path("weights", experiment_id)
        buffer = io.BytesIO()
        np.savez(buffer, **result.network.weights(), class_names=np.array(CLASS_NAMES))
        storage.save_bytes(name, buffer.getvalue())  # replaced whole (rename on disk, one PUT on S3)
        weights_path = name
    misclassified = _misclassified_before_commit(experiment_id, weights_path) if weights_path else None
    fault_point(FINAL_COMMIT)
    ended = run_end(
        experiment_id=experiment_id, status=status, only_if=_holding(lease), misclassified=misclassified,
        epochs_done=result.epochs_run, best_val_accuracy=result.best_val_accuracy,
        best_epoch=result.best_epoch, test_accuracy=result.test_accuracy, test_loss=result.test_loss,
        confusion_matrix=result.confusion_matrix, per_class_accuracy=result.per_class_accuracy,
        message=result.message, weights_path=weights_path,
    )
    if ended is None:
        raise LeaseLost(f"experiment {experiment_id}: lease {lease} is no longer current")
    return ended


def _misclassified_before_commit(experiment_id: int, weights_path: str) -> dict[str, Any] | None:
    """The run's misclassified list, stored with its final status (one state change); None if it
    cannot be computed now: the run_ended subscriber (services/inspection.py) tries again."""
    experiment = Experiment.objects.get(pk=experiment_id)
    experiment.weights_path = weights_path
    try:
        return misclassified_record(experiment=experiment)
    except Exception:  # noqa: BLE001 - the list is secondary to the run's result
        logger.warning("experiment %s: misclassified list not computed before the final commit", experiment_id,
                       exc_info=True)
        return None


def experiment_fail(*, experiment_id: int, lease: int, error: str) -> None:
    run_end(experiment_id=experiment_id, status=Status.FAILED, only_if=_holding(lease),
            error_message=error[:5000])


def experiment_hand_back(*, experiment_id: int, lease: int, reason: str) -> bool:
    """Put a run this worker had to stop back in the queue (if it still holds the lease).

    Not a cancel and not a crash: the run goes back to `queued`, `handbacks` is bumped (so
    the attempt is not counted against TUNER_MAX_ATTEMPTS), an `interrupted` event says why,
    and a new message is sent with the same task id; the next claim resumes from the
    checkpoint. False means the run is not ours to hand back (lease lost, or the user asked
    to cancel: the caller finishes it).
    """
    updated = with_db_retry(lambda: Experiment.objects.filter(
        pk=experiment_id, **_holding(lease), cancel_requested=False,
    ).update(status=Status.QUEUED, heartbeat_at=timezone.now(), worker_host="", handbacks=F("handbacks") + 1))
    if not updated:
        return False
    experiment = Experiment.objects.get(pk=experiment_id)
    message = f"interrupted after epoch {experiment.epochs_done}: {reason}; queued to resume from its checkpoint"
    Experiment.objects.filter(pk=experiment_id, status=Status.QUEUED).update(message=message)
    experiment.message = message
    broker.enqueue_run(experiment_id=experiment_id, task_id=experiment.task_id)
    logger.warning("experiment %s: %s", experiment_id, message)
    events.publish(experiment_id, experiment.owner_id, {
        "type": "interrupted", "reason": reason, "epochs_done": experiment.epochs_done, "message": message})
    live.publish_log(experiment_id, experiment.owner_id, message, level="warning")
    live.publish_status(experiment)
    return True


def _hand_back_without_database(*, experiment_id: int, task_id: str, lease: int | None) -> None:
    """The database stayed down through every retry: send the run again, marked as this
    lease's hand-back, a little later. Its claim (when the database is back) continues the
    run without counting a crash; until then the row still says `running`, and the
    reconciler's stale-heartbeat check is the second line of defence."""
    logger.error("experiment %s: database unavailable after %s retries; handing the run back through the broker",
                 experiment_id, settings.TUNER_DB_RETRIES)
    broker.enqueue_run(experiment_id=experiment_id, task_id=task_id, handed_back_lease=lease,
                       countdown=settings.TUNER_HEARTBEAT_SECONDS)


# --------------------------------------------------------------------------- the trainer's callbacks


class RunMonitor:
    """Trainer callbacks for one claimed run: cancel polling, heartbeat, progress events, epoch
    writes, the sweep's pruner. TUNER_BATCH_DELAY_SECONDS slows every batch down on purpose
    (fault-injection tests need epochs long enough to interrupt at a known point)."""

    def __init__(self, experiment: Experiment, lease: int):
        self.experiment_id = experiment.pk
        self.owner_id = experiment.owner_id
        self.lease = lease
        self.epochs = experiment.config["epochs"]
        self.lease_lost = False
        self.sweep_id = experiment.sweep_id
        self.pruned_message = ""  # set when the sweep's pruner stops this trial
        self.config = experiment.config
        self.stop_on_diagnosis = experiment.stop_on_diagnosis
        self.diagnosis_stop = None  # the critical live diagnosis that stops this run (stop_on_diagnosis)
        self.handback_reason = ""  # set by request_worker_stop: hand the run back, do not finish it
        self._stop = False
        self._next_poll = 0.0
        self._next_progress = 0.0
        self._next_heartbeat = time.monotonic() + settings.TUNER_HEARTBEAT_SECONDS
        self._batch_delay = settings.TUNER_BATCH_DELAY_SECONDS

    def request_handback(self, reason: str) -> None:
        """From a signal handler: stop at the next batch and hand the run back (see request_worker_stop)."""
        self.handback_reason = reason
        self._stop = True

    def __enter__(self) -> RunMonitor:
        with _training_lock:
            _training_now.add(self)
        return self

    def __exit__(self, *exc_info) -> None:
        with _training_lock:
            _training_now.discard(self)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if self._stop or now < self._next_poll:
            return self._stop
        self._next_poll = now + settings.TUNER_CANCEL_POLL_SECONDS
        if now >= self._next_heartbeat:
            # Long epochs must not look like a vanished worker to runs_reconcile.
            self._next_heartbeat = now + settings.TUNER_HEARTBEAT_SECONDS
            with_db_retry(lambda: Experiment.objects.filter(pk=self.experiment_id, **_holding(self.lease))
                          .update(heartbeat_at=timezone.now()))
        row = with_db_retry(lambda: Experiment.objects.filter(pk=self.experiment_id).values(
            "attempts", "cancel_requested").first())
        if row is None or row["attempts"] != self.lease:
            self.lease_lost = self._stop = True
        elif row["cancel_requested"]:
            self._stop = True
        return self._stop

    def on_batch(self, epoch: int, batch: int, batches: int) -> None:
        if self._batch_delay:
            time.sleep(self._batch_delay)
        now = time.monotonic()
        if now >= self._next_progress or batch == batches:
            self._next_progress = now + PROGRESS_EVENT_SECONDS
            events.publish(self.experiment_id, self.owner_id, {
                "type": "progress", "epoch": epoch, "epochs": self.epochs, "batch": batch, "batches": batches})

    def on_epoch(self, metrics: EpochMetrics) -> None:
        try:
            with_db_retry(lambda: experiment_record_epoch(experiment_id=self.experiment_id, lease=self.lease,
                                                          metrics=metrics))
            finding = with_db_retry(lambda: experiment_diagnose_epoch(
                experiment_id=self.experiment_id, lease=self.lease, config=self.config,
                stop_on_diagnosis=self.stop_on_diagnosis))
        except LeaseLost:
            self.lease_lost = True
            raise
        if finding is not None and self.diagnosis_stop is None:
            self.diagnosis_stop, self._stop = finding, True  # the trainer stops before its next batch
            live.publish_log(self.experiment_id, self.owner_id, finding.stop_reason(), level="warning")
        if self.sweep_id is not None and metrics.epoch < self.epochs and not self.pruned_message:
            # The trainer stops at its next should_stop() check, before the next batch.
            self.pruned_message = sweep_trial_prune_check(experiment_id=self.experiment_id, epoch=metrics.epoch)
            if self.pruned_message:
                self._stop = True
                live.publish_log(self.experiment_id, self.owner_id, self.pruned_message)


def experiment_run(*, experiment_id: int, task_id: str = "", worker_host: str = "",
                   handed_back_lease: int | None = None) -> None:
    """Claim and train one run to its end (the Celery task's whole body)."""
    worker_host = worker_host or worker_identity()
    try:
        lease = with_db_retry(lambda: experiment_claim(experiment_id=experiment_id, task_id=task_id,
                                                       worker_host=worker_host, handed_back_lease=handed_back_lease))
    except DATABASE_ERRORS:
        # Still no database: keep the message alive (the same hand-back, if it was one).
        _hand_back_without_database(experiment_id=experiment_id, task_id=task_id, lease=handed_back_lease)
        return
    if lease is None:
        return
    try:
        _train(experiment_id, lease, worker_host)
    except DATABASE_ERRORS:
        # An outage that outlasted every retry, at an epoch boundary or at the end: the run
        # is not failed, it resumes from its last checkpoint once the database is back.
        _hand_back_without_database(experiment_id=experiment_id, task_id=task_id, lease=lease)


def _train(experiment_id: int, lease: int, worker_host: str) -> None:
    experiment = Experiment.objects.get(pk=experiment_id)
    checkpoint = storage.StorageCheckpoint(artifact_path("checkpoints", experiment_id))
    if experiment.epochs_done == 0:
        # No epoch stored means no checkpoint of this run (it is written after the epoch is):
        # a file here belongs to an older run that had the same id (a reset database, a test).
        storage.delete(checkpoint.name)
    if experiment.checkpoint_path != checkpoint.name:
        Experiment.objects.filter(pk=experiment_id).update(checkpoint_path=checkpoint.name)
        experiment.checkpoint_path = checkpoint.name
    live.publish_status(experiment)
    live_sweeps.publish_trial(experiment, "trial_started")  # a sweep's trial: its row is now running
    if lease > 1:
        live.publish_log(experiment_id, experiment.owner_id, level="warning",
                         message=f"attempt {lease}: resuming after epoch {experiment.epochs_done} on {worker_host}")
    monitor = RunMonitor(experiment, lease)
    try:
        config = TrainingConfig.from_dict(experiment.config)
        data = _dataset_for(config)
        with monitor:
            result = fit(config, data, on_epoch=monitor.on_epoch, on_batch=monitor.on_batch,
                         should_stop=monitor.should_stop, checkpoint=checkpoint)
    except DATABASE_ERRORS:
        raise  # not the run's fault: experiment_run hands it back
    except LeaseLost:
        logger.warning("experiment %s: lease %s lost to a newer delivery; stopping", experiment_id, lease)
        return
    except (ConfigError, DatasetError, CheckpointError) as exc:
        experiment_fail(experiment_id=experiment_id, lease=lease, error=str(exc))
        return
    except Exception as exc:
        logger.exception("experiment %s failed", experiment_id)
        experiment_fail(experiment_id=experiment_id, lease=lease, error=f"{type(exc).__name__}: {exc}")
        return
    if monitor.lease_lost:
        logger.warning("experiment %s: lease %s lost; not finishing", experiment_id, lease)
        return
    if monitor.handback_reason and result.outcome == Outcome.CANCELLED and experiment_hand_back(
            experiment_id=experiment_id, lease=lease, reason=monitor.handback_reason):
        return
    status = None
    if monitor.pruned_message and result.outcome is Outcome.CANCELLED:
        status, result.message = Status.PRUNED, monitor.pruned_message
    elif monitor.diagnosis_stop is not None and result.outcome in (Outcome.CANCELLED, Outcome.DIVERGED):
        status = diagnosis_stop_status(monitor.diagnosis_stop)
        if status == Status.SUCCEEDED and result.outcome is Outcome.CANCELLED:
            result = fit_result_early_stopped(result, data)
        result.message = monitor.diagnosis_stop.stop_reason()
    elif result.outcome is Outcome.DIVERGED:  # inside an epoch: no metrics reached on_epoch
        finding = with_db_retry(lambda: experiment_diagnose_trainer_divergence(
            experiment_id=experiment_id, lease=lease, config=experiment.config, detail=result.message))
        if experiment.stop_on_diagnosis:
            result.message = finding.stop_reason()
    try:
        with_db_retry(lambda: experiment_finish(experiment_id=experiment_id, lease=lease, result=result,
                                                status=status))
    except LeaseLost:
        return
