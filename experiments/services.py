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
from experiments.models import EpochMetric, Experiment, Recommendation
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
                      parent: Experiment | None = None, enqueue: bool = True, **links: Any) -> Experiment:
    """Validate `config` (missing fields take defaults), store a queued run, enqueue it on commit.

    `links` are extra foreign keys set on the row (e.g. sweep=..., source_recommendation=...).
    `enqueue=False` leaves the run to a caller that executes it in-process (experiment_run).
    """
    training_config = config_validate(config=config)
    if parent is not None and parent.owner_id != owner.pk:
        raise ServiceError("parent must be one of your runs", errors={"parent": ["Not one of your runs."]})
    limit = settings.TUNER_MAX_ACTIVE_RUNS_PER_USER
    with transaction.atomic():
        # Lock the owner's row so two concurrent requests cannot both pass the quota check.
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
        active = Experiment.objects.filter(owner=owner, status__in=Experiment.ACTIVE_STATUSES).count()
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
    experiment.delete()
    for path in paths:
        if path:
            Path(path).unlink(missing_ok=True)


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


def experiment_finish(*, experiment_id: int, lease: int, result: FitResult) -> Experiment:
    """Store the run's outcome and test results (lease-checked), then announce it."""
    status = OUTCOME_STATUS[result.outcome]
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
        self._next_poll = 0.0
        self._next_progress = 0.0
        self._stop = False

    def should_stop(self) -> bool:
        now = time.monotonic()
        if self._stop or now < self._next_poll:
            return self._stop
        self._next_poll = now + settings.TUNER_CANCEL_POLL_SECONDS
        row = Experiment.objects.filter(pk=self.experiment_id).values("attempts", "cancel_requested").first()
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
            experiment_record_epoch(experiment_id=self.experiment_id, lease=self.lease, metrics=metrics)
        except LeaseLost:
            self.lease_lost = True
            raise


def experiment_run(*, experiment_id: int, task_id: str = "", worker_host: str = "") -> None:
    """Claim and train one run to its end (the Celery task's whole body)."""
    lease = experiment_claim(experiment_id=experiment_id, task_id=task_id,
                             worker_host=worker_host or worker_identity())
    if lease is None:
        return
    experiment = Experiment.objects.get(pk=experiment_id)
    checkpoint = artifact_path("checkpoints", experiment_id)
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
    try:
        experiment_finish(experiment_id=experiment_id, lease=lease, result=result)
    except LeaseLost:
        return
    _after_finish(experiment_id)


def _after_finish(experiment_id: int) -> None:
    """Work that follows a finished run: its recommendations, and the outcome of the advice
    that created it. Failures here never change the run's stored result."""
    try:
        recommendations_generate(experiment_id=experiment_id)
    except Exception:  # noqa: BLE001 - advice is secondary to the stored result
        logger.exception("experiment %s: could not generate recommendations", experiment_id)


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
