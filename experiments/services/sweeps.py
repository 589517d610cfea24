"""The database side of sweeps: a sweep's trials are ordinary runs with `sweep` and `trial_number`.

`sweep_fill` keeps `parallelism` of them queued or running until `budget` trials exist,
asking experiments/search (Optuna, rebuilt from the trial rows) for each one's parameters.
It works under a lock on the sweep's row, so two workers finishing trials at the same
moment cannot ask twice for one slot, lose a trial, or exceed the budget. It runs when the
sweep is created, on extend and on retry, and (`on_run_ended`, a lifecycle subscriber)
whenever one of its trials ends, whatever way it ends.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from experiments import live, live_sweeps, selectors
from experiments.errors import (
    ConfigInvalid,
    InvalidState,
    QuotaExceeded,
    StorageLimitExceeded,
    SweepInvalid,
    SweepTrialNotFound,
)
from experiments.faults import SWEEP_REFILL, fault_point
from experiments.models import Experiment, Sweep
from experiments.search import pruning, study
from experiments.search import space as search_space
from experiments.search.records import SweepSpec, warm_start_matches
from experiments.services.artifacts import storage_check
from experiments.services.runs import (
    enqueue_on_commit,
    experiment_cancel,
    experiment_create,
    free_run_slots,
    lock_owner,
)
from training.config import ConfigError, TrainingConfig

logger = logging.getLogger(__name__)

Status = Experiment.Status


def on_run_ended(experiment: Experiment) -> None:
    """lifecycle subscriber: a trial ended, so its sweep goes on (or finishes); and any run of
    the owner that ends frees a run slot that their other sweeps may be waiting for."""
    if experiment.sweep_id is not None:
        live_sweeps.publish_trial(experiment, "trial_ended")
        sweep_fill(sweep_id=experiment.sweep_id)
    waiting = (Sweep.objects.filter(owner_id=experiment.owner_id, status__in=Sweep.ACTIVE_STATUSES)
               .exclude(pk=experiment.sweep_id).order_by("created_at").values_list("pk", flat=True))
    for sweep_id in waiting:
        sweep_fill(sweep_id=sweep_id)


def sweep_create(*, owner, name: str = "", base_config: dict[str, Any] | None = None, space: Any = None,
                 strategy: str = "tpe", budget: int | None = None, parallelism: int = 2, pruner: str = "none",
                 second_objective: str = "none", seed: int | None = None, warm_start: bool = False,
                 diagnostic_pruning: bool = False) -> Sweep:
    """Validate everything at once (SweepInvalid lists every error), store the sweep, queue its first trials.

    Its trials count against the owner's quota of active runs like any run: the sweep keeps
    at most `parallelism` trials queued or running, and fewer while the owner has fewer free
    slots; the rest wait inside the sweep (not in the broker) until slots free up.
    With `warm_start`, the owner's earlier succeeded runs (outside sweeps) whose config
    equals the base outside the space and whose varied values lie inside it are imported
    as completed trials of the search (they do not use the budget).
    """
    try:
        plan = search_space.validate_sweep(name=name, base_config=base_config, space=space, strategy=strategy,
                                     budget=budget, parallelism=parallelism, pruner=pruner,
                                     second_objective=second_objective, seed=seed, warm_start=warm_start,
                                     diagnostic_pruning=diagnostic_pruning)
    except search_space.SweepSpecError as exc:
        raise SweepInvalid("invalid sweep", errors=exc.errors) from None
    with transaction.atomic():
        lock_owner(owner)
        storage_check(owner=owner)  # StorageLimitExceeded: no sweep that could not start a trial
        sweep = Sweep.objects.create(
            owner=owner, name=(plan.name or f"{plan.strategy} sweep")[:200], base_config=plan.base_config,
            space=plan.space, strategy=plan.strategy, second_objective=plan.second_objective, budget=plan.budget,
            parallelism=plan.parallelism, pruner=plan.pruner, seed=plan.seed, warm_start=plan.warm_start,
            diagnostic_pruning=plan.diagnostic_pruning, status=Sweep.Status.QUEUED)
        if plan.warm_start:
            spec = SweepSpec.from_row(sweep)
            sweep.warm_start_runs = [run.pk for run in selectors.sweep_warm_start_candidates(owner=owner)
                                     if warm_start_matches(spec, run.config)]
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
    before, started = live_sweeps.Before.of(sweep), []  # what the sweep's watchers are told on commit
    if sweep.status not in Sweep.ACTIVE_STATUSES:
        _sweep_set_best(sweep)
        live_sweeps.announce_sweep(sweep, before)
        return
    if sweep.autotune:
        from experiments.services.autotune import autotune_fill_locked  # (autotune builds on this module)

        autotune_fill_locked(sweep, before)
        return
    spec = SweepSpec.from_row(sweep)
    fingerprint = selectors.sweep_trial_fingerprint(sweep=sweep)
    # Every trial ever created uses the budget, whatever its status (even if deleted since).
    created = max(sweep.trials_created, fingerprint.last)
    active = fingerprint.active
    budget = spec.effective_budget
    free = free_run_slots(sweep.owner)  # under the owner's lock: no race with their other creations
    asker = None
    storage_full = ""  # the storage limit's message once it refused a trial
    out_of_time = _out_of_time(sweep)
    fault_point(SWEEP_REFILL)
    while active < sweep.parallelism and created < budget and free > 0 and not out_of_time:
        if asker is None and not sweep.candidates:  # each asked trial stays RUNNING in the study
            asker = _sweep_asker(sweep, spec, fingerprint)
        number = created + 1
        # Find the fix (services/fixes.py): trial n tries candidate n instead of asking the search.
        changes = sweep.candidates[number - 1]["changes"] if sweep.candidates else asker.ask(number)
        config = {**sweep.base_config, **changes}
        name = f"{sweep.name} #{number}"[:200]
        try:
            started.append(experiment_create(owner=sweep.owner, config=config, name=name, sweep=sweep,
                                             trial_number=number, enforce_quota=False).pk)  # quota checked above
            active += 1
            free -= 1
        except StorageLimitExceeded as exc:  # no trial is created; the ones running may still end
            storage_full = exc.message
            study.ASKERS.drop(sweep.pk)  # it asked for a number that was not stored
            break
        except ConfigInvalid as exc:  # a combination the space's checks could not rule out
            if asker is not None:
                asker.fail(number)
            started.append(Experiment.objects.create(
                owner=sweep.owner, name=name, config=config, sweep=sweep, trial_number=number,
                status=Status.FAILED, finished_at=timezone.now(), task_id=uuid.uuid4().hex,
                error_message="invalid combination of values: " + "; ".join(
                    f"{field}: {' '.join(messages)}" for field, messages in exc.errors.items())).pk)
        created = sweep.trials_created = number
    if sweep.status == Sweep.Status.QUEUED and created:
        sweep.status = Sweep.Status.RUNNING
    if active == 0 and created < budget and free <= 0:
        sweep.message = (f"waiting for a free run slot: you have {settings.TUNER_MAX_ACTIVE_RUNS_PER_USER} runs "
                         "queued or running (the limit); its next trials start as they end")
    elif sweep.message.startswith("waiting for a free run slot"):
        sweep.message = ""
    if storage_full and active == 0:  # nothing running whose end would try again: the sweep stops
        sweep.status, sweep.finished_at = Sweep.Status.FINISHED, timezone.now()
        sweep.message = f"stopped after {created} of {budget} trials: {storage_full}"
    if active == 0 and out_of_time and created < budget:
        sweep.status, sweep.finished_at = Sweep.Status.FINISHED, timezone.now()
        sweep.message = f"used its time budget of {_minutes(sweep.time_budget_seconds)} ({created} trials)"
    elif active == 0 and created >= budget:
        sweep.status = Sweep.Status.FINISHED
        sweep.finished_at = timezone.now()
        grid = search_space.grid_size(spec.params) if spec.strategy == "grid" else None
        sweep.message = (f"ran all {grid} points of its grid" if grid is not None and created >= grid
                         else f"ran its budget of {budget} trials")
    _sweep_set_best(sweep)
    sweep.save(update_fields=["status", "finished_at", "message", "best_trial", "trials_created"])
    live_sweeps.announce_sweep(sweep, before, started=started)


def _sweep_asker(sweep: Sweep, spec: SweepSpec, fingerprint) -> study.CachedAsker:
    """The sweep's study, kept in this process between fills and told only what changed since
    (search.study.CachedAsker); rebuilt from every trial row when it no longer matches them."""
    key = (spec, tuple(sweep.warm_start_runs or ()) if sweep.warm_start else ())
    asker = study.ASKERS.get(sweep.pk, key)
    if asker is not None:
        asker.sync(selectors.sweep_trial_records_changed(sweep=sweep, after=asker.last, numbers=asker.open_numbers))
        if asker.matches(fingerprint):
            return asker
    warm = selectors.sweep_warm_records(sweep=sweep) if sweep.warm_start else []
    asker = study.CachedAsker(spec, selectors.sweep_trial_records(sweep=sweep), warm, key=key)
    study.ASKERS.put(sweep.pk, asker)
    return asker


def _minutes(seconds: float | None) -> str:
    seconds = float(seconds or 0)
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def sweep_deadline(sweep: Sweep):
    """When a time-budgeted sweep's clock runs out (created_at + its time budget), else None."""
    if not sweep.time_budget_seconds or sweep.created_at is None:
        return None
    return sweep.created_at + timedelta(seconds=sweep.time_budget_seconds)


def _out_of_time(sweep: Sweep) -> bool:
    """A time-budgeted sweep whose remaining time cannot fit another trial (its trials' median wall
    time so far, or nothing before the first one ends)."""
    deadline = sweep_deadline(sweep)
    if deadline is None:
        return False
    remaining = (deadline - timezone.now()).total_seconds()
    typical = selectors.sweep_typical_trial_seconds(sweep=sweep)
    return remaining <= (typical or 0.0)


FINAL_GRACE_FRACTION = 0.1  # an autotune's final trial may run this share of the budget past its end


def _past_deadline(sweep: Sweep, *, experiment_id: int, epoch: int) -> str:
    """The reason to stop a trial of a time-budgeted sweep whose clock ran out, else ""."""
    deadline = sweep_deadline(sweep)
    if deadline is None:
        return ""
    rung = Experiment.objects.filter(pk=experiment_id).values_list("sweep_rung", flat=True).first()
    if sweep.autotune and rung is not None and rung >= len(sweep.autotune.get("rungs", [])):
        deadline += timedelta(seconds=FINAL_GRACE_FRACTION * sweep.time_budget_seconds)
    if timezone.now() < deadline:
        return ""
    return f"pruned at epoch {epoch}: the sweep's time budget of {_minutes(sweep.time_budget_seconds)} ran out"


def _sweep_set_best(sweep: Sweep) -> None:
    best = (Experiment.objects.filter(sweep=sweep, status=Status.SUCCEEDED, best_val_accuracy__isnull=False)
            .order_by("-best_val_accuracy", "trial_number").only("pk").first())
    if sweep.status not in Sweep.ACTIVE_STATUSES:
        Sweep.objects.filter(pk=sweep.pk).update(best_trial=best)
    sweep.best_trial = best


def sweep_trial_prune_check(*, experiment_id: int, epoch: int) -> str:
    """After a trial stored `epoch` (and its live diagnosis): the reason to stop it now, or "" to go on.

    With diagnostic pruning, a critical live diagnosis prunes it ("pruned at epoch 2: not learning —
    val 10.2 % after 2 epochs, near chance; raise the learning rate"), and so does a sweep-only
    diagnosis of its own curve against the best another trial has reached ("pruned at epoch 3: its
    curve extrapolates to 78.0 % at epoch 12 ..., below the best trial's 85.9 % (#4)"; see
    services/diagnosis.sweep_trial_diagnose); then the median/ASHA pruner.
    """
    try:
        sweep = (Sweep.objects.filter(trials__pk=experiment_id)
                 .filter(~Q(pruner=Sweep.Pruner.NONE) | Q(diagnostic_pruning=True)
                         | Q(time_budget_seconds__isnull=False)).first())
        if sweep is None:
            return ""
        if reason := _past_deadline(sweep, experiment_id=experiment_id, epoch=epoch):
            return reason
        if sweep.pruner == Sweep.Pruner.NONE and not sweep.diagnostic_pruning:
            return ""
        if sweep.diagnostic_pruning:
            diagnoses = Experiment.objects.filter(pk=experiment_id).values_list("diagnoses", flat=True).first()
            critical = next((item for item in diagnoses or [] if isinstance(item, dict)
                             and item.get("severity") == "critical" and item.get("epoch", epoch) <= epoch), None)
            if critical is not None:
                return f"pruned at epoch {epoch}: {critical.get('message', critical.get('kind'))}"
        records = selectors.sweep_trial_records(sweep=sweep)
        current = next((r for r in records if r.experiment_id == experiment_id), None)
        if current is None:
            return ""
        if sweep.diagnostic_pruning:
            from experiments.services.diagnosis import sweep_trial_diagnose  # (kept local to this function)

            finding = sweep_trial_diagnose(experiment_id=experiment_id, current=current, records=records,
                                           epoch=epoch)
            if finding is not None:
                return finding.prune_reason()
        if sweep.pruner == Sweep.Pruner.NONE:
            return ""
        warm = selectors.sweep_warm_records(sweep=sweep) if sweep.warm_start else []
        return pruning.should_prune(SweepSpec.from_row(sweep), records, current, epoch, warm=warm)
    except Exception:  # noqa: BLE001 - a pruning hiccup must never break the run
        logger.exception("experiment %s: pruning check failed; the trial goes on", experiment_id)
        return ""


def sweep_cancel(*, sweep: Sweep) -> Sweep:
    """Stop the sweep: queued trials are cancelled at once, running ones asked to stop; no new trials."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if sweep.status not in Sweep.ACTIVE_STATUSES:
            raise InvalidState(f"Sweep #{sweep.pk} is already {sweep.status}; nothing to cancel.")
        before = live_sweeps.Before.of(sweep)
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
        live_sweeps.announce_sweep(sweep, before)
    return sweep


def sweep_extend(*, sweep: Sweep, budget: Any) -> Sweep:
    """Raise the budget; the search goes on from everything its trials taught it."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if sweep.status == Sweep.Status.CANCELLED:
            raise InvalidState(f"Sweep #{sweep.pk} was cancelled; it cannot be extended.")
        spec = SweepSpec.from_row(sweep)
        grid = search_space.grid_size(spec.params) if spec.strategy == "grid" else None
        if message := search_space.budget_problem(budget, current=sweep.budget, grid=grid):
            raise SweepInvalid("invalid budget", errors={"budget": [message]})
        sweep.budget = budget
        if sweep.status == Sweep.Status.FINISHED:
            sweep.status, sweep.finished_at, sweep.message = Sweep.Status.RUNNING, None, ""
        sweep.save(update_fields=["budget", "status", "finished_at", "message"])
        _sweep_fill_locked(sweep)
    return sweep


def sweep_trial_retry(*, sweep: Sweep, experiment: Experiment) -> Experiment:
    """Queue a failed or cancelled trial again; it trains from its first epoch again (its
    checkpoint was deleted when it ended) and, training being deterministic, redoes the same epochs.

    The same row (and trial number) is reused, so the budget is unchanged. `attempts` goes
    back to 0 when the trial had failed (or used up its attempts), so its worker may claim it.
    """
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        before = live_sweeps.Before.of(sweep)
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
        except (ConfigError, TypeError, ValueError):
            raise InvalidState(f"Trial {experiment.trial_number} has an invalid configuration; retrying cannot "
                               "help.") from None
        active = Experiment.objects.filter(sweep=sweep, status__in=Experiment.ACTIVE_STATUSES).count()
        if active >= sweep.parallelism:
            raise InvalidState(f"Sweep #{sweep.pk} already has {active} trials queued or running (its "
                               "parallelism); retry when one of them ends.")
        if free_run_slots(sweep.owner) <= 0:
            raise QuotaExceeded(f"You already have {settings.TUNER_MAX_ACTIVE_RUNS_PER_USER} runs queued or "
                                "running (the limit); retry the trial when one of them ends.")
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
        enqueue_on_commit(experiment)
        live_sweeps.announce_sweep(sweep, before, started=[experiment.pk])
    live.publish_status(experiment)
    return experiment
