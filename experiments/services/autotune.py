"""Tune for me (autotune): a time-budgeted sweep whose trials the search.autotune plan decides.

It is an ordinary Sweep (strategy tpe, pruner none) with `autotune` (the Plan's JSON),
`time_budget_seconds` and trials tagged with `sweep_rung`; services.sweeps calls
`autotune_fill_locked` for it under the sweep's row lock, so the same guarantees hold (two
workers finishing at once never double-create; a crash leaves rows the next fill decides from).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from experiments import live_sweeps, selectors
from experiments.errors import ConfigInvalid, InvalidState, StorageLimitExceeded, SweepInvalid
from experiments.models import Experiment, Sweep
from experiments.search import autotune as plan_of
from experiments.search.records import SweepSpec
from experiments.search.space import parse_space
from experiments.services.artifacts import storage_check
from experiments.services.runs import experiment_cancel, experiment_create, free_run_slots, lock_owner
from training.config import FIELDS, ConfigError, TrainingConfig

Status = Experiment.Status


def autotune_validate(*, minutes: Any, fixed: Any = None, rungs: Any = None) -> tuple[plan_of.Plan, dict, dict]:
    """(plan, base config, space), or SweepInvalid listing every problem."""
    errors: dict[str, list[str]] = {}
    if problem := plan_of.minutes_problem(minutes):
        errors["minutes"] = [problem]
    fixed = {} if fixed is None else fixed
    base: dict[str, Any] = {}
    if not isinstance(fixed, dict):
        errors["fixed"] = ["Must be an object of {field: value}."]
        fixed = {}
    unknown = sorted(name for name in fixed if name not in FIELDS)
    if unknown:
        errors["fixed"] = [f"Unknown field(s): {', '.join(map(str, unknown))}."]
    else:
        try:
            base = TrainingConfig.from_dict(fixed).to_dict()
        except ConfigError as exc:
            errors["fixed"] = [f"{name}: {' '.join(messages)}" for name, messages in exc.errors.items()]
        except (TypeError, ValueError) as exc:
            errors["fixed"] = [str(exc)]
    plan = None
    if not errors:
        seconds = float(minutes) * 60
        plan = plan_of.Plan(seconds=seconds, fixed=dict(fixed))
        if rungs is not None:  # tests and benches: tiny rungs
            plan = plan_of.Plan(seconds=seconds, fixed=dict(fixed),
                                rungs=tuple(plan_of.Rung(**r) for r in rungs[:-1]), final=plan_of.Rung(**rungs[-1]))
        space = plan_of.space_for(fixed)
        _, space_errors = parse_space(space, base)
        if space_errors:
            errors["fixed"] = [str(space_errors)]
    if errors:
        raise SweepInvalid("invalid autotune", errors=errors)
    return plan, base, plan_of.space_for(fixed)


def autotune_create(*, owner, minutes: Any, fixed: Any = None, name: str = "", parallelism: int = 2,
                    seed: int = 0, rungs: Any = None) -> Sweep:
    """Start an autotune: a time-budgeted sweep searching the whole space (minus `fixed`)."""
    plan, base, space = autotune_validate(minutes=minutes, fixed=fixed, rungs=rungs)
    with transaction.atomic():
        lock_owner(owner)
        storage_check(owner=owner)
        sweep = Sweep.objects.create(
            owner=owner, name=(name or f"autotune {float(minutes):g} min")[:200], base_config=base, space=space,
            strategy=Sweep.Strategy.TPE, budget=Sweep.MAX_TIMED_BUDGET, parallelism=parallelism,
            pruner=Sweep.Pruner.NONE, seed=seed, warm_start=True, status=Sweep.Status.QUEUED,
            time_budget_seconds=max(1, round(plan.seconds)), autotune=plan.to_json())
        spec = SweepSpec.from_row(sweep)
        sweep.warm_start_runs = [run.pk for run in selectors.sweep_warm_start_candidates(owner=owner)
                                 if all(name in run.config and param.contains(run.config[name])
                                        for name, param in spec.params.items())]
        sweep.save(update_fields=["warm_start_runs"])
        autotune_fill_locked(sweep, live_sweeps.Before.of(sweep))
    return sweep


def autotune_extend(*, sweep: Sweep, minutes: Any) -> Sweep:
    """Add `minutes` to an autotune's wall budget (its search goes on; a new final follows if one ran)."""
    if problem := plan_of.minutes_problem(minutes):
        raise SweepInvalid("invalid minutes", errors={"minutes": [problem]})
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if not sweep.autotune:
            raise InvalidState(f"Sweep #{sweep.pk} is not an autotune.")
        if sweep.status == Sweep.Status.CANCELLED:
            raise InvalidState(f"Sweep #{sweep.pk} was cancelled; it cannot be extended.")
        plan = plan_of.Plan.from_json(sweep.autotune)
        elapsed = (timezone.now() - sweep.created_at).total_seconds()
        seconds = max(plan.seconds, elapsed) + float(minutes) * 60  # the added minutes start now at the latest
        sweep.autotune = {**plan.to_json(), "seconds": seconds}
        sweep.time_budget_seconds = min(Sweep.MAX_TIME_BUDGET_SECONDS, round(seconds))
        if sweep.status == Sweep.Status.FINISHED:
            sweep.status, sweep.finished_at, sweep.message = Sweep.Status.RUNNING, None, ""
        sweep.save(update_fields=["autotune", "time_budget_seconds", "status", "finished_at", "message"])
        autotune_fill_locked(sweep, live_sweeps.Before.of(sweep))
    return sweep


def autotune_fill_locked(sweep: Sweep, before) -> None:
    """Under the sweep's row lock: start what search.autotune.decide says while slots are free; finish it
    when the final trial has ended (or nothing can run in the time left)."""
    plan = plan_of.Plan.from_json(sweep.autotune)
    spec = SweepSpec.from_row(sweep)
    records = selectors.sweep_trial_records(sweep=sweep)
    warm = selectors.sweep_warm_records(sweep=sweep) if sweep.warm_start else []
    created = max(sweep.trials_created, max((r.number for r in records), default=0))
    active = sum(r.status in Experiment.ACTIVE_STATUSES for r in records)
    free = free_run_slots(sweep.owner)
    elapsed = (timezone.now() - sweep.created_at).total_seconds()
    started: list[int] = []
    failures = 0
    step = plan_of.decide(plan, spec, records, elapsed=elapsed)
    while active < sweep.parallelism and free > 0 and step.kind in ("new", "promote", "final"):
        number = created + 1
        if step.kind == "new":
            changes = plan_of.suggest(spec, records, warm, number=number)
        else:
            changes = spec.params_of(step.source.config) if step.source is not None else {}
        fidelity = plan.rung_config(step.rung)
        if step.kind == "final":
            fidelity["epochs"] = step.epochs
            _stop_search(sweep)
        config = {**sweep.base_config, **changes, **fidelity}
        label = {"new": "", "promote": f" rung {step.rung}", "final": " final"}[step.kind]
        try:
            run = experiment_create(owner=sweep.owner, config=config, name=f"{sweep.name} #{number}{label}"[:200],
                                    sweep=sweep, trial_number=number, enforce_quota=False)
        except StorageLimitExceeded as exc:
            sweep.message = f"stopped: {exc.message}"
            break
        except ConfigInvalid as exc:  # a combination the space cannot rule out (e.g. warm-up vs epochs)
            run = Experiment.objects.create(
                owner=sweep.owner, name=f"{sweep.name} #{number}"[:200], config=config, sweep=sweep,
                trial_number=number, status=Status.FAILED, finished_at=timezone.now(), task_id=uuid.uuid4().hex,
                error_message="invalid combination of values: " + "; ".join(
                    f"{field}: {' '.join(messages)}" for field, messages in exc.errors.items()))
            active, free, failures = active - 1, free + 1, failures + 1  # a failed trial takes no slot
            if failures >= 20:
                break
        Experiment.objects.filter(pk=run.pk).update(sweep_rung=step.rung)
        started.append(run.pk)
        created = sweep.trials_created = number
        active, free = active + 1, free - 1
        records = selectors.sweep_trial_records(sweep=sweep)
        step = plan_of.decide(plan, spec, records, elapsed=elapsed)
    if sweep.status == Sweep.Status.QUEUED and created:
        sweep.status = Sweep.Status.RUNNING
    final = next((r for r in records if r.rung == plan.final_rung), None)
    if active == 0 and (final is not None or step.kind == "done" or created == 0):
        sweep.status, sweep.finished_at = Sweep.Status.FINISHED, timezone.now()
        if final is not None and final.test_accuracy is not None:
            sweep.message = (f"autotune done: the winner (trial #{final.number}, {final.config.get('epochs')} epochs "
                             f"on all the data) reached {100 * final.test_accuracy:.2f} % test accuracy")
        elif final is not None:
            sweep.message = f"autotune done: the final trial ended {final.status}"
        else:
            sweep.message = "autotune stopped: no trial could run in its time budget"
    sweep.best_trial = (Experiment.objects.filter(sweep=sweep, status=Status.SUCCEEDED,
                                                  best_val_accuracy__isnull=False)
                        .order_by("-sweep_rung", "-best_val_accuracy", "trial_number").first())
    sweep.save(update_fields=["status", "finished_at", "message", "best_trial", "trials_created"])
    live_sweeps.announce_sweep(sweep, before, started=started)


def _stop_search(sweep: Sweep) -> None:
    """The final starts: the search's trials still queued or running stop (the reason is their message)."""
    for experiment in Experiment.objects.filter(sweep=sweep, status__in=Experiment.ACTIVE_STATUSES):
        try:
            experiment = experiment_cancel(experiment=experiment)
        except InvalidState:
            continue
        Experiment.objects.filter(pk=experiment.pk).update(
            message="stopped: the autotune's search time is up; the winner trains on all the data")
