"""Runs as the user sees them: create (with the per-user quota), rerun, cancel, delete."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from experiments import broker, live, storage
from experiments.errors import ConfigInvalid, InvalidState, QuotaExceeded, ServiceError
from experiments.models import Experiment
from experiments.services.artifacts import storage_check
from experiments.services.lifecycle import run_end
from training.config import ConfigError, TrainingConfig

Status = Experiment.Status


def config_validate(*, config: dict[str, Any] | None) -> TrainingConfig:
    if config is not None and not isinstance(config, dict):
        raise ConfigInvalid("config must be an object", errors={"config": ["Must be a JSON object."]})
    try:
        return TrainingConfig.from_dict(config or {})
    except ConfigError as exc:
        raise ConfigInvalid("invalid configuration", errors=exc.errors) from None


def lock_owner(owner) -> None:
    """Serialise an owner's quota checks (two concurrent requests cannot both pass)."""
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()


def free_run_slots(owner) -> int:
    """How many more runs `owner` may have queued or running (TUNER_MAX_ACTIVE_RUNS_PER_USER),
    counted under a lock on the owner's row: call it inside the transaction that creates them."""
    lock_owner(owner)
    active = Experiment.objects.filter(owner=owner, status__in=Experiment.ACTIVE_STATUSES).count()
    return settings.TUNER_MAX_ACTIVE_RUNS_PER_USER - active


def experiment_create(*, owner, config: dict[str, Any] | None, name: str = "",
                      parent: Experiment | None = None, enqueue: bool = True, enforce_quota: bool = True,
                      stop_on_diagnosis: bool = False, **links: Any) -> Experiment:
    """Validate `config` (missing fields take defaults), store a queued run, enqueue it on commit.

    `links` are extra foreign keys set on the row (e.g. sweep=..., source_recommendation=...).
    `enqueue=False` leaves the run to a caller that executes it in-process (experiment_run).
    `stop_on_diagnosis` stops the run at its first critical live diagnosis (services/diagnosis.py).
    `enforce_quota=False` is for sweep trials: the sweep coordinator counts the owner's free
    slots itself, under the same lock, before asking for trials (services/sweeps.py). The
    storage limit applies to every run (StorageLimitExceeded, see services/artifacts.py).
    """
    training_config = config_validate(config=config)
    if parent is not None and parent.owner_id != owner.pk:
        raise ServiceError("parent must be one of your runs", errors={"parent": ["Not one of your runs."]})
    with transaction.atomic():
        if enforce_quota and (free := free_run_slots(owner)) <= 0:
            limit = settings.TUNER_MAX_ACTIVE_RUNS_PER_USER
            raise QuotaExceeded(
                f"You already have {limit - free} runs queued or running (limit {limit}). "
                "Wait for some to finish or cancel them.")
        storage_check(owner=owner, config=training_config)  # sweep trials too: disk is not a slot
        experiment = Experiment.objects.create(
            owner=owner, name=name[:200], config=training_config.to_dict(), parent=parent,
            stop_on_diagnosis=bool(stop_on_diagnosis), task_id=uuid.uuid4().hex, **links,
        )
        if enqueue:
            enqueue_on_commit(experiment)
    return experiment


def enqueue_on_commit(experiment: Experiment) -> None:
    """Send the run to the broker once the row it names is committed."""
    experiment_id, task_id = experiment.pk, experiment.task_id
    transaction.on_commit(lambda: broker.enqueue_run(experiment_id=experiment_id, task_id=task_id))


def experiment_rerun(*, experiment: Experiment, owner) -> Experiment:
    """A new queued run with the same config and run options (stop_on_diagnosis), `parent`
    pointing at `experiment`."""
    name = experiment.name if experiment.name.startswith("rerun of") else f"rerun of {experiment.name or f'#{experiment.pk}'}"
    return experiment_create(owner=owner, config=experiment.config, name=name, parent=experiment,
                             stop_on_diagnosis=experiment.stop_on_diagnosis)


def experiment_cancel(*, experiment: Experiment) -> Experiment:
    """Queued: cancelled at once. Running: the worker stops within one mini-batch of noticing."""
    ended = run_end(experiment_id=experiment.pk, status=Status.CANCELLED, only_if={"status": Status.QUEUED},
                    cancel_requested=True, message="cancelled before it started")
    if ended is not None:
        return ended
    updated = Experiment.objects.filter(pk=experiment.pk, status=Status.RUNNING).update(cancel_requested=True)
    experiment.refresh_from_db()
    if not updated:
        raise InvalidState(f"Run #{experiment.pk} is already {experiment.status}; nothing to cancel.")
    live.publish_log(experiment.pk, experiment.owner_id, "cancel requested")
    return experiment


def experiment_delete(*, experiment: Experiment) -> None:
    """Delete a run that is not running, with its files. A queued run is cancelled first, so it
    ends like any other (its sweep moves on); the delete itself is conditional, so a run a
    worker claimed in between is refused, not deleted under the worker."""
    run_end(experiment_id=experiment.pk, status=Status.CANCELLED, only_if={"status": Status.QUEUED},
            cancel_requested=True, message="cancelled before it started (deleted)")
    paths = Experiment.objects.filter(pk=experiment.pk).values_list("checkpoint_path", "weights_path").first()
    if paths is None:
        return  # already deleted
    deleted, _ = Experiment.objects.filter(pk=experiment.pk).exclude(status=Status.RUNNING).delete()
    if not deleted:
        raise InvalidState(f"Run #{experiment.pk} is running; cancel it before deleting it.")
    for path in paths:
        storage.delete(storage.name_of(path))
