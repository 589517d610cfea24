"""Every write to experiments, and the body of the training task.

Views, tasks, consumers and commands validate input and call one function here.

Work distribution in one paragraph: `experiment_create` stores a queued row and,
once the transaction commits, enqueues `run_experiment(id)`. A worker *claims*
the run with a conditional UPDATE that bumps `attempts`; that number is its
lease. Every later write (epochs, the final result) checks the lease under a row
lock, so when Redis re-delivers a task whose worker died, or delivers it twice,
only the newest claimant writes, and it resumes from the last checkpoint. A run
whose deliveries keep dying ends `failed` after TUNER_MAX_ATTEMPTS claims.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from experiments import events
from experiments.models import EpochMetric, Experiment, Recommendation, Sweep
from training.config import ConfigError, TrainingConfig
from training.data import CLASS_NAMES, DatasetError, load_fashion_mnist, prepare_dataset
from training.trainer import CheckpointError, EpochMetrics, FitResult, Outcome, fit

logger = logging.getLogger(__name__)

Status = Experiment.Status

METRIC_FIELDS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
                 "samples_per_second", "gradient_norm", "gradient_norm_max", "dead_unit_fraction")

OUTCOME_STATUS = {
    Outcome.COMPLETED: Status.SUCCEEDED,
    Outcome.EARLY_STOPPED: Status.SUCCEEDED,
    Outcome.DIVERGED: Status.DIVERGED,
    Outcome.CANCELLED: Status.CANCELLED,
}


class ServiceError(Exception):
    """A request the domain refuses; `status_code` is the HTTP answer it maps to."""

    status_code = 400

    def __init__(self, message: str, *, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class ConfigInvalid(ServiceError):
    pass


class QuotaExceeded(ServiceError):
    status_code = 429


class InvalidState(ServiceError):
    status_code = 409


class SweepInvalid(ServiceError):
    """An invalid sweep request; `errors` is {"space": {field: [...]}, "budget": [...], ...}."""


class LeaseLost(Exception):
    """Another delivery of the same run holds the lease now; this one must stop writing."""


# --------------------------------------------------------------------------- requests


def config_validate(*, config: dict[str, Any] | None) -> TrainingConfig:
    if config is not None and not isinstance(config, dict):
        raise ConfigInvalid("config must be an object", errors={"config": ["Must be a JSON object."]})
    try:
        return TrainingConfig.from_dict(config or {})
    except ConfigError as exc:
        raise ConfigInvalid("invalid configuration", errors=exc.errors) from None


def experiment_create(*, owner, config: dict[str, Any] | None, name: str = "",
                      parent: Experiment | None = None, enqueue: bool = True, enforce_quota: bool = True,
                      **links: Any) -> Experiment:
    """Validate `config` (missing fields take defaults), store a queued run, enqueue it on commit.

    `links` are extra foreign keys set on the row (e.g. sweep=..., source_recommendation=...).
    `enqueue=False` leaves the run to a caller that executes it in-process (experiment_run).
    `enforce_quota=False` is for sweep trials: a sweep's parallelism is its quota, checked
    when the sweep is created (sweep_create).
    """
    training_config = config_validate(config=config)
    if parent is not None and parent.owner_id != owner.pk:
        raise ServiceError("parent must be one of your runs", errors={"parent": ["Not one of your runs."]})
    limit = settings.TUNER_MAX_ACTIVE_RUNS_PER_USER
    with transaction.atomic():
        # Lock the owner's row so two concurrent requests cannot both pass the quota check.
        if enforce_quota:
            get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
        active = (Experiment.objects.filter(owner=owner, status__in=Experiment.ACTIVE_STATUSES).count()
                  if enforce_quota else 0)
        if active >= limit:
            raise QuotaExceeded(
                f"You already have {active} runs queued or running (limit {limit}). "
                "Wait for some to finish or cancel them."
            )
        experiment = Experiment.objects.create(
            owner=owner, name=name[:200], config=training_config.to_dict(), parent=parent,
            task_id=uuid.uuid4().hex, **links,
        )
        if enqueue:
            _enqueue_on_commit(experiment)
    return experiment


def _enqueue_on_commit(experiment: Experiment) -> None:
    from experiments.tasks import run_experiment

    experiment_id, task_id = experiment.pk, experiment.task_id
    transaction.on_commit(lambda: run_experiment.apply_async(args=[experiment_id], task_id=task_id))


def experiment_rerun(*, experiment: Experiment, owner) -> Experiment:
    """A new queued run with the same config, `parent` pointing at `experiment`."""
    name = experiment.name if experiment.name.startswith("rerun of") else f"rerun of {experiment.name or f'#{experiment.pk}'}"
    return experiment_create(owner=owner, config=experiment.config, name=name, parent=experiment)


def experiment_cancel(*, experiment: Experiment) -> Experiment:
    """Queued: cancelled at once. Running: the worker stops within one mini-batch of noticing."""
    now = timezone.now()
    if Experiment.objects.filter(pk=experiment.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED, finished_at=now, cancel_requested=True, message="cancelled before it started"
    ):
        experiment.refresh_from_db()
        _publish_status(experiment)
        _sweep_trial_ended(experiment.pk)
        return experiment
    updated = Experiment.objects.filter(pk=experiment.pk, status=Status.RUNNING).update(cancel_requested=True)
    experiment.refresh_from_db()
    if not updated:
        raise InvalidState(f"Run #{experiment.pk} is already {experiment.status}; nothing to cancel.")
    events.publish(experiment.pk, experiment.owner_id,
                   {"type": "log", "level": "info", "message": "cancel requested"})
    return experiment


def experiment_delete(*, experiment: Experiment) -> None:
    if experiment.status == Status.RUNNING:
        raise InvalidState(f"Run #{experiment.pk} is running; cancel it before deleting it.")
    paths = [experiment.checkpoint_path, experiment.weights_path]
    sweep_id = experiment.sweep_id
    experiment.delete()
    for path in paths:
        if path:
            Path(path).unlink(missing_ok=True)
    if sweep_id is not None:
        _sweep_refill(sweep_id)  # a deleted queued trial frees a slot (its number stays used)


# --------------------------------------------------------------------------- the worker side


_prepared_cache: dict[tuple, Any] = {}


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


def artifact_path(kind: str, experiment_id: int) -> Path:
    directory = Path(settings.TUNER_ARTIFACT_DIR) / kind
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"experiment-{experiment_id}.npz"


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def experiment_claim(*, experiment_id: int, task_id: str = "", worker_host: str = "") -> int | None:
    """Take the lease on a queued (or re-delivered running) run; its new `attempts` or None.

    None means there is nothing to do: the run finished, was cancelled, or was just
    marked failed because it exhausted its attempts.
    """
    now = timezone.now()
    max_attempts = settings.TUNER_MAX_ATTEMPTS
    with transaction.atomic():
        claimed = Experiment.objects.filter(
            pk=experiment_id, status__in=Experiment.ACTIVE_STATUSES, attempts__lt=max_attempts,
            cancel_requested=False,
        ).update(
            status=Status.RUNNING, attempts=F("attempts") + 1, started_at=Coalesce("started_at", now),
            heartbeat_at=now, worker_host=worker_host[:255], task_id=task_id or F("task_id"),
        )
        row = Experiment.objects.filter(pk=experiment_id).values("attempts", "status", "owner_id",
                                                                 "cancel_requested").first()
    if row is None:
        logger.info("experiment %s no longer exists; nothing to run", experiment_id)
        return None
    if claimed:
        return row["attempts"]
    if row["status"] == Status.RUNNING and row["cancel_requested"]:
        # The worker that ran it died after a cancel request: honour the cancel.
        _finish_abandoned(experiment_id, Status.CANCELLED, message="cancelled (its worker stopped)")
    elif row["status"] == Status.RUNNING and row["attempts"] >= max_attempts:
        _finish_abandoned(experiment_id, Status.FAILED,
                          error=f"gave up after {row['attempts']} attempts: the worker running it "
                                "stopped each time (out of memory or killed?)")
    return None


def _finish_abandoned(experiment_id: int, status: str, *, message: str = "", error: str = "") -> None:
    updated = Experiment.objects.filter(pk=experiment_id, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), message=message, error_message=error)
    if updated:
        _publish_status(Experiment.objects.get(pk=experiment_id))
        _sweep_trial_ended(experiment_id)


def _locked_lease_holder(experiment_id: int, lease: int) -> Experiment:
    """The run's row, locked, if `lease` is still current; raises LeaseLost otherwise."""
    experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
    if experiment is None or experiment.attempts != lease or experiment.status != Status.RUNNING:
        raise LeaseLost(f"experiment {experiment_id}: lease {lease} is no longer current")
    return experiment


def experiment_record_epoch(*, experiment_id: int, lease: int, metrics: EpochMetrics) -> EpochMetric:
    """Upsert one epoch's metrics (idempotent by epoch), then publish it."""
    values = {name: float(getattr(metrics, name)) for name in METRIC_FIELDS}
    with transaction.atomic():
        experiment = _locked_lease_holder(experiment_id, lease)
        row, _ = EpochMetric.objects.update_or_create(
            experiment_id=experiment_id, epoch=metrics.epoch, defaults=values)
        best = experiment.best_val_accuracy
        update: dict[str, Any] = {"epochs_done": metrics.epoch, "heartbeat_at": timezone.now()}
        if best is None or metrics.val_accuracy > best or experiment.best_epoch == metrics.epoch:
            update.update(best_val_accuracy=metrics.val_accuracy, best_epoch=metrics.epoch)
        Experiment.objects.filter(pk=experiment_id).update(**update)
    events.publish(experiment_id, experiment.owner_id,
                   {"type": "epoch", "epoch": metrics.epoch, **values,
                    "epochs": experiment.config.get("epochs")})
    return row


def experiment_finish(*, experiment_id: int, lease: int, result: FitResult, status: str | None = None) -> Experiment:
    """Store the run's outcome and test results (lease-checked), then announce it.

    `status` overrides the outcome's: a sweep trial its pruner stopped ends "pruned".
    """
    status = status or OUTCOME_STATUS[result.outcome]
    weights_path = ""
    if result.outcome in (Outcome.COMPLETED, Outcome.EARLY_STOPPED):
        path = artifact_path("weights", experiment_id)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **result.network.weights(), class_names=np.array(CLASS_NAMES))
        os.replace(tmp, path)
        weights_path = str(path)
    with transaction.atomic():
        _locked_lease_holder(experiment_id, lease)
        Experiment.objects.filter(pk=experiment_id).update(
            status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(),
            epochs_done=result.epochs_run, best_val_accuracy=result.best_val_accuracy,
            best_epoch=result.best_epoch, test_accuracy=result.test_accuracy, test_loss=result.test_loss,
            confusion_matrix=result.confusion_matrix, per_class_accuracy=result.per_class_accuracy,
            message=result.message, weights_path=weights_path,
        )
    experiment = Experiment.objects.get(pk=experiment_id)
    _publish_finished(experiment)
    return experiment


def experiment_fail(*, experiment_id: int, lease: int, error: str) -> None:
    with transaction.atomic():
        try:
            _locked_lease_holder(experiment_id, lease)
        except LeaseLost:
            return
        Experiment.objects.filter(pk=experiment_id).update(
            status=Status.FAILED, finished_at=timezone.now(), error_message=error[:5000])
    _publish_finished(Experiment.objects.get(pk=experiment_id))
    _sweep_trial_ended(experiment_id)


def _publish_status(experiment: Experiment) -> None:
    events.publish(experiment.pk, experiment.owner_id, status_event(experiment), to_user=True)


def status_event(experiment: Experiment) -> dict[str, Any]:
    return {"type": "status", "status": experiment.status, "epochs_done": experiment.epochs_done,
            "name": experiment.name, "best_val_accuracy": experiment.best_val_accuracy,
            "test_accuracy": experiment.test_accuracy, "message": experiment.message,
            "error": experiment.error_message}


def _publish_finished(experiment: Experiment) -> None:
    _publish_status(experiment)
    events.publish(experiment.pk, experiment.owner_id, {
        "type": "finished", "status": experiment.status, "epochs_done": experiment.epochs_done,
        "best_val_accuracy": experiment.best_val_accuracy, "best_epoch": experiment.best_epoch,
        "test_accuracy": experiment.test_accuracy, "test_loss": experiment.test_loss,
        "message": experiment.message, "error": experiment.error_message,
    })


class _RunMonitor:
    """Trainer callbacks for one claimed run: cancel polling, progress events, epoch writes."""

    def __init__(self, experiment: Experiment, lease: int):
        self.experiment_id = experiment.pk
        self.owner_id = experiment.owner_id
        self.lease = lease
        self.epochs = experiment.config["epochs"]
        self.lease_lost = False
        self.sweep_id = experiment.sweep_id
        self.pruned_message = ""  # set when the sweep's pruner stops this trial
        self._next_poll = 0.0
        self._next_progress = 0.0
        self._stop = False
        self.shutdown = False  # the worker is shutting down: hand the run back (see "reliability")
        self._next_heartbeat = time.monotonic() + settings.TUNER_HEARTBEAT_SECONDS

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and worker_stop_requested():
            self.shutdown = self._stop = True
        if self._stop or now < self._next_poll:
            return self._stop
        self._next_poll = now + settings.TUNER_CANCEL_POLL_SECONDS
        if now >= self._next_heartbeat:
            # Long epochs must not look like a vanished worker to runs_reconcile.
            self._next_heartbeat = now + settings.TUNER_HEARTBEAT_SECONDS
            _with_db_retry(lambda: Experiment.objects.filter(
                pk=self.experiment_id, attempts=self.lease, status=Status.RUNNING,
            ).update(heartbeat_at=timezone.now()))
        row = _with_db_retry(lambda: Experiment.objects.filter(pk=self.experiment_id).values(
            "attempts", "cancel_requested").first())
        if row is None or row["attempts"] != self.lease:
            self.lease_lost = True
            self._stop = True
        elif row["cancel_requested"]:
            self._stop = True
        return self._stop

    def on_batch(self, epoch: int, batch: int, batches: int) -> None:
        now = time.monotonic()
        if now >= self._next_progress or batch == batches:
            self._next_progress = now + 0.5
            events.publish(self.experiment_id, self.owner_id, {
                "type": "progress", "epoch": epoch, "epochs": self.epochs, "batch": batch,
                "batches": batches})

    def on_epoch(self, metrics: EpochMetrics) -> None:
        try:
            _with_db_retry(lambda: experiment_record_epoch(experiment_id=self.experiment_id, lease=self.lease,
                                                           metrics=metrics))
        except LeaseLost:
            self.lease_lost = True
            raise
        if self.sweep_id is not None and metrics.epoch < self.epochs and not self.pruned_message:
            # The trainer stops at its next should_stop() check, before the next batch.
            self.pruned_message = sweep_trial_prune_check(experiment_id=self.experiment_id, epoch=metrics.epoch)
            if self.pruned_message:
                self._stop = True
                events.publish(self.experiment_id, self.owner_id,
                               {"type": "log", "level": "info", "message": self.pruned_message})


def experiment_run(*, experiment_id: int, task_id: str = "", worker_host: str = "") -> None:
    """Claim and train one run to its end (the Celery task's whole body)."""
    lease = experiment_claim(experiment_id=experiment_id, task_id=task_id,
                             worker_host=worker_host or worker_identity())
    if lease is None:
        return
    experiment = Experiment.objects.get(pk=experiment_id)
    checkpoint = artifact_path("checkpoints", experiment_id)
    if experiment.epochs_done == 0:
        # No epoch stored means no checkpoint of this run (it is written after the epoch is):
        # a file here belongs to an older run that had the same id (a reset database, a test).
        checkpoint.unlink(missing_ok=True)
    if not experiment.checkpoint_path:
        Experiment.objects.filter(pk=experiment_id).update(checkpoint_path=str(checkpoint))
    _publish_status(experiment)
    if lease > 1:
        events.publish(experiment_id, experiment.owner_id, {
            "type": "log", "level": "warning",
            "message": f"attempt {lease}: resuming after epoch {experiment.epochs_done} on {worker_host or worker_identity()}"})
    monitor = _RunMonitor(experiment, lease)
    try:
        config = TrainingConfig.from_dict(experiment.config)
        data = _dataset_for(config)
        result = fit(config, data, on_epoch=monitor.on_epoch, on_batch=monitor.on_batch,
                     should_stop=monitor.should_stop, checkpoint=checkpoint)
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
    if monitor.shutdown and result.outcome == Outcome.CANCELLED and experiment_requeue_for_shutdown(
            experiment_id=experiment_id, lease=lease):
        return
    status = None
    if monitor.pruned_message and result.outcome is Outcome.CANCELLED:
        status, result.message = Status.PRUNED, monitor.pruned_message
    try:
        _with_db_retry(lambda: experiment_finish(experiment_id=experiment_id, lease=lease, result=result,
                                                 status=status))
    except LeaseLost:
        return
    _after_finish(experiment_id)


def _after_finish(experiment_id: int) -> None:
    """Work that follows a finished run: its recommendations, and the outcome of the advice
    that created it, and the next trials of its sweep. Failures here never change the run's
    stored result."""
    status = Experiment.objects.filter(pk=experiment_id).values_list("status", flat=True).first()
    if status != Status.PRUNED:  # a pruned trial's curve is cut short on purpose: no advice
        try:
            recommendations_generate(experiment_id=experiment_id)
        except Exception:  # noqa: BLE001 - advice is secondary to the stored result
            logger.exception("experiment %s: could not generate recommendations", experiment_id)
    _sweep_trial_ended(experiment_id)


# --------------------------------------------------------------------------- recommendations

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
MIN_EPOCHS_FOR_ADVICE_AFTER_CANCEL = 2


def recommendations_generate(*, experiment_id: int) -> list[Recommendation]:
    """Analyse a finished run, replace its Recommendation rows, publish them, and record
    the outcome of the recommendation that created this run (if any)."""
    from experiments import selectors
    from experiments.recommender import analyze

    experiment = Experiment.objects.get(pk=experiment_id)
    if experiment.status not in Experiment.FINISHED_STATUSES:
        return []
    _record_advice_outcome(experiment)
    if experiment.status == Status.CANCELLED and experiment.epochs_done < MIN_EPOCHS_FOR_ADVICE_AFTER_CANCEL:
        return []
    analysis = analyze(selectors.run_summary(experiment=experiment),
                       selectors.recommender_history(experiment=experiment))
    with transaction.atomic():
        Recommendation.objects.filter(experiment=experiment).delete()
        rows = Recommendation.objects.bulk_create([
            Recommendation(
                experiment=experiment, kind=advice.kind, priority=advice.priority,
                priority_rank=PRIORITY_RANK.get(advice.priority, 3), rank=rank, title=advice.title[:200],
                rationale=advice.rationale, changes=advice.changes, confidence=advice.confidence,
                evidence=advice.evidence,
            )
            for rank, advice in enumerate(analysis.recommendations)
        ])
        Experiment.objects.filter(pk=experiment.pk).update(
            performance_category=analysis.category, analysis=analysis.summary)
    events.publish(experiment.pk, experiment.owner_id, {
        "type": "recommendations", "category": analysis.category, "summary": analysis.summary,
        "recommendations": [selectors.recommendation_as_dict(row) for row in rows],
    })
    return rows


def _record_advice_outcome(experiment: Experiment) -> None:
    """If this run came from Apply & Run, store on the advice whether it helped."""
    advice = experiment.source_recommendation
    if advice is None:
        return
    parent = advice.experiment
    parent_best = parent.best_val_accuracy
    if parent_best is None and parent.status in (Status.DIVERGED, Status.FAILED):
        parent_best = 0.0  # it produced no usable network at all
    child_best = experiment.best_val_accuracy if experiment.status != Status.DIVERGED else None
    delta = None
    if parent_best is not None:
        delta = (child_best if child_best is not None else 0.0) - parent_best
    Recommendation.objects.filter(pk=advice.pk).update(
        outcome_experiment=experiment, outcome_delta=delta,
        improved=None if delta is None else delta > 0)


def recommendation_apply(*, recommendation: Recommendation, owner, enqueue: bool = True) -> Experiment:
    """Apply & Run: a new queued run with the parent's config plus the advice's changes."""
    parent = recommendation.experiment
    config = {**parent.config, **recommendation.changes}
    child = experiment_create(
        owner=owner, config=config, parent=parent, source_recommendation=recommendation,
        name=f"{recommendation.kind} fix of #{parent.pk}"[:200], enqueue=enqueue,
    )
    Recommendation.objects.filter(pk=recommendation.pk, applied_at__isnull=True).update(
        applied_at=timezone.now())
    return child


__all__ = [
    "ConfigInvalid", "InvalidState", "LeaseLost", "QuotaExceeded", "ServiceError",
    "config_validate", "experiment_cancel", "experiment_claim", "experiment_create", "experiment_delete",
    "experiment_fail", "experiment_finish", "experiment_record_epoch", "experiment_rerun",
    "experiment_run",
]


# --------------------------------------------------------------------------- reliability
#
# Runs must survive the things that happen to a lab server: a worker killed (OOM, SIGKILL),
# a deploy (SIGTERM), Redis restarted without persistence, the database dropping connections.
# The lease (experiment_claim) already makes every re-delivery safe; this section makes sure
# a re-delivery *happens*:
#
# - `runs_reconcile` re-enqueues queued runs whose message is no longer in Redis, and running
#   runs whose heartbeat went stale (their worker vanished). Celery beat runs it every minute
#   and every worker runs it once at start-up (tuner_site/celery.py).
# - A worker shutting down (SIGTERM) sets a process-wide flag; the training loop stops at the
#   next batch and `experiment_requeue_for_shutdown` hands the run back to the queue, so
#   another worker resumes it from its checkpoint instead of the deploy waiting for it.
# - `_with_db_retry` reconnects once when the database dropped the worker's connection.

import threading  # noqa: E402

from django.db import InterfaceError, OperationalError, connection  # noqa: E402
from django.db.models import Q  # noqa: E402

_worker_stop = threading.Event()


def request_worker_stop() -> None:
    """Called from the worker's shutdown signal: running trainings hand their runs back."""
    _worker_stop.set()


def worker_stop_requested() -> bool:
    return _worker_stop.is_set()


def _with_db_retry(operation):
    """Run `operation`; if the database connection was dropped, reconnect and run it once more.

    Only outside a transaction (inside one, the whole transaction is gone and the caller's
    atomic block has to fail). The operations retried here are idempotent.
    """
    try:
        return operation()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        logger.warning("database connection lost; reconnecting and retrying once", exc_info=True)
        connection.close()
        return operation()


def experiment_requeue_for_shutdown(*, experiment_id: int, lease: int) -> bool:
    """Put a run this worker stopped for shutdown back in the queue (if it still holds the lease).

    Not a cancel: the run goes back to `queued` and a new message is sent with the same task id;
    the next claim takes a new lease and resumes from the checkpoint. False means the run is
    not ours to hand back (lease lost, or the user asked to cancel: the caller finishes it).
    """
    from experiments.tasks import run_experiment

    updated = _with_db_retry(lambda: Experiment.objects.filter(
        pk=experiment_id, attempts=lease, status=Status.RUNNING, cancel_requested=False,
    ).update(status=Status.QUEUED, heartbeat_at=timezone.now(), worker_host=""))
    if not updated:
        return False
    experiment = Experiment.objects.get(pk=experiment_id)
    run_experiment.apply_async(args=[experiment_id], task_id=experiment.task_id or None)
    logger.warning("experiment %s: worker shutting down; re-queued after epoch %s",
                   experiment_id, experiment.epochs_done)
    events.publish(experiment_id, experiment.owner_id, {
        "type": "log", "level": "warning",
        "message": f"worker shutting down: re-queued, resumes after epoch {experiment.epochs_done}"})
    _publish_status(experiment)
    return True


def broker_task_ids(*, queue: str | None = None) -> set[str]:
    """Task ids of the messages kombu's Redis transport holds: waiting in `queue` (all priority
    lists) or delivered but unacknowledged (the `unacked` hash)."""
    import json

    from tuner_site.celery import app

    queue = queue or settings.TUNER_QUEUE
    client = broker_redis()
    try:
        raw: list[bytes] = []
        separator = "\x06\x16"
        for key in [queue, *(f"{queue}{separator}{priority}" for priority in range(1, 10))]:
            raw.extend(client.lrange(key, 0, -1))
        unacked_key = app.conf.broker_transport_options.get("unacked_key", "unacked")
        for value in client.hvals(unacked_key):
            try:
                payload = json.loads(value)
            except ValueError:
                continue
            if isinstance(payload, list) and payload:
                raw.append(json.dumps(payload[0]).encode())
    finally:
        client.close()
    ids: set[str] = set()
    for message in raw:
        try:
            headers = json.loads(message).get("headers") or {}
        except (ValueError, AttributeError):
            continue
        if headers.get("id"):
            ids.add(headers["id"])
    return ids


def broker_redis():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=10, socket_connect_timeout=5)


def runs_reconcile(*, stale_after_seconds: float | None = None, queued_min_age_seconds: float = 10.0,
                   include_all_running: bool = False) -> dict[str, Any]:
    """Re-enqueue runs the broker lost and runs whose worker vanished. Idempotent.

    (a) `queued` runs older than `queued_min_age_seconds` whose task id is in neither the queue
        nor kombu's unacked hash (Redis lost its data, or the enqueue never happened);
    (b) `running` runs whose heartbeat is older than `stale_after_seconds` (default
        TUNER_HEARTBEAT_STALE_SECONDS), or every running run with `include_all_running` (a
        fresh stack where no worker of the previous one survives: runlab).

    The message is sent with the run's own task id; the claim makes a duplicate harmless
    (at worst the newer delivery takes the lease and resumes from the checkpoint), and the
    attempts cap still applies. A Redis lock keeps concurrent reconcilers from double-sending.
    """
    import redis

    from experiments.tasks import run_experiment

    stale = settings.TUNER_HEARTBEAT_STALE_SECONDS if stale_after_seconds is None else stale_after_seconds
    report: dict[str, Any] = {"locked": False, "requeued_queued": [], "requeued_stale": []}
    client = broker_redis()
    lock = client.lock(f"{settings.TUNER_QUEUE}:reconcile-lock", timeout=120, blocking=False)
    try:
        if not lock.acquire():
            report["locked"] = True  # another reconciler is at work
            return report
        try:
            now = timezone.now()
            in_broker = broker_task_ids()
            queued = (Experiment.objects.filter(
                status=Status.QUEUED, cancel_requested=False,
                created_at__lt=now - timezone.timedelta(seconds=queued_min_age_seconds))
                .order_by("created_at", "id").values_list("pk", "task_id"))
            running = Experiment.objects.filter(status=Status.RUNNING)
            if not include_all_running:
                cutoff = now - timezone.timedelta(seconds=stale)
                running = running.filter(Q(heartbeat_at__lt=cutoff)
                                         | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
            for experiment_id, task_id in queued:
                if task_id and task_id in in_broker:
                    continue
                run_experiment.apply_async(args=[experiment_id], task_id=task_id or None)
                report["requeued_queued"].append(experiment_id)
            for experiment_id, task_id, heartbeat in (running.order_by("heartbeat_at", "id")
                                                      .values_list("pk", "task_id", "heartbeat_at")):
                # Touching the heartbeat is this reconciler's claim on the resend: a second
                # reconciler, or the next beat while every worker is busy, waits a whole stale
                # period again instead of piling up deliveries that would burn attempts.
                if not Experiment.objects.filter(pk=experiment_id, status=Status.RUNNING,
                                                 heartbeat_at=heartbeat).update(heartbeat_at=now):
                    continue
                run_experiment.apply_async(args=[experiment_id], task_id=task_id or None)
                report["requeued_stale"].append(experiment_id)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                pass  # expired while we worked: harmless, the work is idempotent
    finally:
        client.close()
    if report["requeued_queued"] or report["requeued_stale"]:
        logger.warning("reconciler re-queued runs: lost by the broker %s, stale heartbeat %s",
                       report["requeued_queued"], report["requeued_stale"])
    return report


__all__ += ["broker_task_ids", "experiment_requeue_for_shutdown", "request_worker_stop", "runs_reconcile",
            "worker_stop_requested"]


# --------------------------------------------------------------------------- sweeps
#
# A sweep's trials are ordinary runs with `sweep` and `trial_number` set. `sweep_fill` keeps
# `parallelism` of them queued or running until `budget` trials exist, asking
# experiments/sweeps.py (Optuna, rebuilt from the trial rows) for each one's parameters. It
# works under a lock on the sweep's row, so two workers finishing trials at the same moment
# cannot ask twice for one slot, lose a trial, or exceed the budget. It is called when the
# sweep is created, whenever one of its trials ends (any final status: _after_finish,
# experiment_fail, _finish_abandoned, experiment_cancel, experiment_delete), on extend and
# on retry.


class SweepTrialNotFound(ServiceError):
    status_code = 404


def sweep_create(*, owner, name: str = "", base_config: dict[str, Any] | None = None, space: Any = None,
                 strategy: str = "tpe", budget: int | None = None, parallelism: int = 2, pruner: str = "none",
                 second_objective: str = "none", seed: int | None = None, warm_start: bool = False) -> Sweep:
    """Validate everything at once (SweepInvalid lists every error), store the sweep, queue its first trials.

    Its trials do not count against the per-user quota one by one: instead the sweep needs
    min(parallelism, budget) free slots when it is created (QuotaExceeded otherwise).
    With `warm_start`, the owner's earlier succeeded runs (outside sweeps) whose config
    equals the base outside the space and whose varied values lie inside it are imported
    as completed trials of the search (they do not use the budget).
    """
    from experiments import selectors, sweeps

    try:
        plan = sweeps.validate_sweep(name=name, base_config=base_config, space=space, strategy=strategy,
                                     budget=budget, parallelism=parallelism, pruner=pruner,
                                     second_objective=second_objective, seed=seed, warm_start=warm_start)
    except sweeps.SweepSpecError as exc:
        raise SweepInvalid("invalid sweep", errors=exc.errors) from None
    limit = settings.TUNER_MAX_ACTIVE_RUNS_PER_USER
    slots = min(plan.parallelism, plan.budget)
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
        active = Experiment.objects.filter(owner=owner, status__in=Experiment.ACTIVE_STATUSES).count()
        if active + slots > limit:
            raise QuotaExceeded(
                f"A sweep running {slots} trials at once needs {slots} free run slots; you have {active} runs "
                f"queued or running (limit {limit}). Lower its parallelism or wait for some runs to finish.")
        sweep = Sweep.objects.create(
            owner=owner, name=(plan.name or f"{plan.strategy} sweep")[:200], base_config=plan.base_config,
            space=plan.space, strategy=plan.strategy, second_objective=plan.second_objective, budget=plan.budget,
            parallelism=plan.parallelism, pruner=plan.pruner, seed=plan.seed, warm_start=plan.warm_start,
            status=Sweep.Status.QUEUED)
        if plan.warm_start:
            spec = sweeps.SweepSpec.from_row(sweep)
            sweep.warm_start_runs = [run.pk for run in selectors.sweep_warm_start_candidates(owner=owner)
                                     if sweeps.warm_start_matches(spec, run.config)]
            sweep.save(update_fields=["warm_start_runs"])
        _sweep_fill_locked(sweep)
    return sweep


def sweep_fill(*, sweep_id: int) -> Sweep | None:
    """Create the sweep's next trials (up to its parallelism and budget); finish it when all are done."""
    with transaction.atomic():
        # The row lock serialises concurrent callers (two workers finishing trials together).
        sweep = Sweep.objects.select_for_update().filter(pk=sweep_id).first()
        if sweep is None:
            return None
        _sweep_fill_locked(sweep)
    return sweep


def _sweep_fill_locked(sweep: Sweep) -> None:
    from experiments import selectors, sweeps

    if sweep.status not in Sweep.ACTIVE_STATUSES:
        _sweep_set_best(sweep)
        return
    spec = sweeps.SweepSpec.from_row(sweep)
    records = selectors.sweep_trial_records(sweep=sweep)
    # Every trial ever created uses the budget, whatever its status (even if deleted since).
    created = max(sweep.trials_created, max((r.number for r in records), default=0))
    active = sum(r.status in Experiment.ACTIVE_STATUSES for r in records)
    budget = spec.effective_budget
    asker = None
    while active < sweep.parallelism and created < budget:
        if asker is None:  # one rebuild per call; each asked trial stays in it as RUNNING
            warm = selectors.sweep_warm_records(sweep=sweep) if sweep.warm_start else []
            asker = sweeps.Asker(spec, records, warm)
        number = created + 1
        config = {**sweep.base_config, **asker.ask(number)}
        name = f"{sweep.name} #{number}"[:200]
        try:
            experiment_create(owner=sweep.owner, config=config, name=name, sweep=sweep, trial_number=number,
                              enforce_quota=False)
            active += 1
        except ConfigInvalid as exc:  # a combination the space's checks could not rule out
            asker.fail(number)
            Experiment.objects.create(
                owner=sweep.owner, name=name, config=config, sweep=sweep, trial_number=number,
                status=Status.FAILED, finished_at=timezone.now(), task_id=uuid.uuid4().hex,
                error_message="invalid combination of values: " + "; ".join(
                    f"{field}: {' '.join(messages)}" for field, messages in exc.errors.items()))
        created = sweep.trials_created = number
    if sweep.status == Sweep.Status.QUEUED and created:
        sweep.status = Sweep.Status.RUNNING
    if active == 0 and created >= budget:
        sweep.status = Sweep.Status.FINISHED
        sweep.finished_at = timezone.now()
        grid = sweeps.grid_size(spec.params) if spec.strategy == "grid" else None
        sweep.message = (f"ran all {grid} points of its grid" if grid is not None and created >= grid
                         else f"ran its budget of {budget} trials")
    _sweep_set_best(sweep)
    sweep.save(update_fields=["status", "finished_at", "message", "best_trial", "trials_created"])


def _sweep_set_best(sweep: Sweep) -> None:
    best = (Experiment.objects.filter(sweep=sweep, status=Status.SUCCEEDED, best_val_accuracy__isnull=False)
            .order_by("-best_val_accuracy", "trial_number").only("pk").first())
    if sweep.status not in Sweep.ACTIVE_STATUSES:
        Sweep.objects.filter(pk=sweep.pk).update(best_trial=best)
    sweep.best_trial = best


def _sweep_trial_ended(experiment_id: int) -> None:
    """A run reached a final status: if it is a sweep trial, let the sweep go on (or finish)."""
    sweep_id = Experiment.objects.filter(pk=experiment_id).values_list("sweep_id", flat=True).first()
    if sweep_id is not None:
        _sweep_refill(sweep_id)


def _sweep_refill(sweep_id: int) -> None:
    try:
        sweep_fill(sweep_id=sweep_id)
    except Exception:  # noqa: BLE001 - the trial's own result is stored; the admin can resume the sweep
        logger.exception("sweep %s: could not create its next trials", sweep_id)


def sweep_trial_prune_check(*, experiment_id: int, epoch: int) -> str:
    """After a trial stored `epoch`: the pruner's reason to stop it now, or "" to go on."""
    from experiments import selectors, sweeps

    try:
        sweep = Sweep.objects.filter(trials__pk=experiment_id).exclude(pruner=Sweep.Pruner.NONE).first()
        if sweep is None:
            return ""
        records = selectors.sweep_trial_records(sweep=sweep)
        current = next((r for r in records if r.experiment_id == experiment_id), None)
        if current is None:
            return ""
        warm = selectors.sweep_warm_records(sweep=sweep) if sweep.warm_start else []
        return sweeps.should_prune(sweeps.SweepSpec.from_row(sweep), records, current, epoch, warm=warm)
    except Exception:  # noqa: BLE001 - a pruning hiccup must never break the run
        logger.exception("experiment %s: pruning check failed; the trial goes on", experiment_id)
        return ""


def sweep_cancel(*, sweep: Sweep) -> Sweep:
    """Stop the sweep: queued trials are cancelled at once, running ones asked to stop; no new trials."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if sweep.status not in Sweep.ACTIVE_STATUSES:
            raise InvalidState(f"Sweep #{sweep.pk} is already {sweep.status}; nothing to cancel.")
        sweep.status = Sweep.Status.CANCELLED
        sweep.finished_at = timezone.now()
        sweep.save(update_fields=["status", "finished_at"])
        queued = running = 0
        for experiment in Experiment.objects.filter(sweep=sweep, status__in=Experiment.ACTIVE_STATUSES):
            try:
                experiment = experiment_cancel(experiment=experiment)
            except InvalidState:
                continue  # it finished meanwhile
            if experiment.status == Status.CANCELLED:
                queued += 1
            else:
                running += 1
        sweep.message = (f"cancelled: {queued} queued trial(s) cancelled, {running} running trial(s) asked to "
                         "stop")
        _sweep_set_best(sweep)
        sweep.save(update_fields=["message", "best_trial"])
    return sweep


def sweep_extend(*, sweep: Sweep, budget: Any) -> Sweep:
    """Raise the budget; the search goes on from everything its trials taught it."""
    from experiments import sweeps

    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if sweep.status == Sweep.Status.CANCELLED:
            raise InvalidState(f"Sweep #{sweep.pk} was cancelled; it cannot be extended.")
        spec = sweeps.SweepSpec.from_row(sweep)
        grid = sweeps.grid_size(spec.params) if spec.strategy == "grid" else None
        if not isinstance(budget, int) or isinstance(budget, bool) or budget <= sweep.budget:
            message = f"Must be a whole number above the current budget ({sweep.budget}), got {budget!r}."
        elif budget > sweeps.MAX_BUDGET:
            message = f"At most {sweeps.MAX_BUDGET} trials."
        elif grid is not None and budget > grid:
            message = f"A grid sweep runs at most its {grid} grid points."
        else:
            message = ""
        if message:
            raise SweepInvalid("invalid budget", errors={"budget": [message]})
        sweep.budget = budget
        if sweep.status == Sweep.Status.FINISHED:
            sweep.status, sweep.finished_at, sweep.message = Sweep.Status.RUNNING, None, ""
        sweep.save(update_fields=["budget", "status", "finished_at", "message"])
        _sweep_fill_locked(sweep)
    return sweep


def sweep_trial_retry(*, sweep: Sweep, experiment: Experiment) -> Experiment:
    """Queue a failed or cancelled trial again; it resumes from its last checkpoint.

    The same row (and trial number) is reused, so the budget is unchanged. `attempts` goes
    back to 0 when the trial had failed (or used up its attempts), so its worker may claim it.
    """
    from training.config import ConfigError as _ConfigError

    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        experiment = Experiment.objects.select_for_update().filter(pk=experiment.pk, sweep=sweep).first()
        if experiment is None:
            raise SweepTrialNotFound(f"Sweep #{sweep.pk} has no such trial.")
        if sweep.status == Sweep.Status.CANCELLED:
            raise InvalidState(f"Sweep #{sweep.pk} was cancelled; its trials cannot be retried.")
        if experiment.status not in (Status.FAILED, Status.CANCELLED):
            raise InvalidState(f"Trial {experiment.trial_number} (run #{experiment.pk}) is {experiment.status}; "
                               "only failed or cancelled trials can be retried.")
        try:
            TrainingConfig.from_dict(experiment.config)
        except (_ConfigError, TypeError, ValueError):
            raise InvalidState(f"Trial {experiment.trial_number} has an invalid configuration; retrying cannot "
                               "help.") from None
        active = Experiment.objects.filter(sweep=sweep, status__in=Experiment.ACTIVE_STATUSES).count()
        if active >= sweep.parallelism:
            raise InvalidState(f"Sweep #{sweep.pk} already has {active} trials queued or running (its "
                               "parallelism); retry when one of them ends.")
        attempts = experiment.attempts
        if experiment.status == Status.FAILED or attempts >= settings.TUNER_MAX_ATTEMPTS:
            attempts = 0
        Experiment.objects.filter(pk=experiment.pk).update(
            status=Status.QUEUED, cancel_requested=False, finished_at=None, heartbeat_at=None, message="",
            error_message="", attempts=attempts, task_id=uuid.uuid4().hex, worker_host="")
        experiment.refresh_from_db()
        if sweep.status == Sweep.Status.FINISHED:
            sweep.status, sweep.finished_at, sweep.message = Sweep.Status.RUNNING, None, ""
            sweep.save(update_fields=["status", "finished_at", "message"])
        _enqueue_on_commit(experiment)
    _publish_status(experiment)
    return experiment


__all__ += ["SweepInvalid", "SweepTrialNotFound", "sweep_cancel", "sweep_create", "sweep_extend", "sweep_fill",
            "sweep_trial_prune_check", "sweep_trial_retry"]
