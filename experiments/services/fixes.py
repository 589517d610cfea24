"""Find the fix: a finished run's advice tried out as a small sweep, and the measured winner.

`experiment_find_fix` picks 2-4 candidate change sets from the run's stored advice
(experiments/recommender/fixes.py), and stores a Sweep of strategy "candidates" whose trial n
trains the parent's config with candidate n's changes (same seed, same subset): the ordinary
sweep coordinator (services/sweeps.py) queues them, at most 2 at once and within the owner's
run quota. When the sweep has ended (`on_run_ended`, a lifecycle subscriber after the sweep
coordinator), `fix_sweep_conclude` compares each trial with the parent, stores `fix_result` and
writes the verdict on the parent as a recommendation: "verified_fix" (placed first, with the
winner's changes and the measured gains) or the information card "verified_none".
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import F

from experiments import events, live, selectors
from experiments.errors import InvalidState
from experiments.models import Experiment, Recommendation, Sweep
from experiments.recommender.fixes import fix_candidates, fix_recommendation, fix_verdict
from experiments.recommender.types import INFO_KINDS
from experiments.search.space import parse_space
from experiments.services.artifacts import storage_check
from experiments.services.recommendations import PRIORITY_RANK
from experiments.services.runs import lock_owner
from experiments.services.sweeps import sweep_fill

logger = logging.getLogger(__name__)

Status = Experiment.Status
FIX_PARALLELISM = 2


def fix_space(*, base_config: dict[str, Any], candidates: list[dict]) -> dict[str, Any]:
    """The sweep's `space` for its pages (parallel coordinates, the trials' varied values): every
    field a candidate changes, as a list of the values tried (the parent's first). Fields whose
    values do not parse as a space together (e.g. warm-up vs epochs) are left out."""
    space: dict[str, Any] = {}
    for candidate in candidates:
        for name, value in candidate["changes"].items():
            values = space.setdefault(name, {"values": [base_config.get(name)]})["values"]
            if value not in values:
                values.append(value)
    kept: dict[str, Any] = {}
    for name, spec in space.items():
        spec = {"values": [v for v in spec["values"] if v is not None]}
        if len(spec["values"]) < 1:
            continue
        trial = {**kept, name: spec}
        if not parse_space(trial, base_config)[1]:
            kept = trial
    # A sweep's space is never empty (experiments/search parses it); the seed, never varied, will do.
    return kept or {"seed": {"values": [base_config.get("seed", 0)]}}


def experiment_find_fix(*, experiment: Experiment, owner) -> tuple[Sweep, bool]:
    """Queue the fix sweep of a finished run; (sweep, created). A run has at most one active fix
    sweep: asking again while it runs returns that one (created False)."""
    with transaction.atomic():
        lock_owner(owner)  # serialises two clicks: the second sees the first one's sweep
        active = (Sweep.objects.filter(fix_of=experiment, status__in=Sweep.ACTIVE_STATUSES)
                  .order_by("-created_at").first())
        if active is not None:
            return active, False
        experiment = Experiment.objects.get(pk=experiment.pk)
        if experiment.status in Experiment.ACTIVE_STATUSES:
            raise InvalidState(f"Run #{experiment.pk} is still {experiment.status}; find its fix once it has "
                               "finished.")
        if experiment.status not in (Status.SUCCEEDED, Status.DIVERGED, Status.CANCELLED) \
                or experiment.epochs_done < 1:
            raise InvalidState(f"Run #{experiment.pk} {experiment.status} without training epochs to compare "
                               "with; only runs that succeeded, diverged or were cancelled after training can "
                               "be fixed.")
        advice = list(selectors.experiment_recommendations(experiment=experiment))
        candidates = fix_candidates(experiment.config, advice)
        if not candidates:
            raise InvalidState(f"Nothing to try for run #{experiment.pk}: its recommendations propose no "
                               "change (no problem was found).")
        storage_check(owner=owner)  # StorageLimitExceeded: no sweep that could not start a trial
        base = dict(experiment.config)
        sweep = Sweep.objects.create(
            owner=owner, name=f"Find the fix for #{experiment.pk}", base_config=base,
            space=fix_space(base_config=base, candidates=candidates), strategy=Sweep.Strategy.CANDIDATES,
            budget=len(candidates), parallelism=FIX_PARALLELISM, seed=int(base.get("seed") or 0),
            status=Sweep.Status.QUEUED, fix_of=experiment, candidates=candidates)
        sweep = sweep_fill(sweep_id=sweep.pk)  # queues the first trials (nested: same transaction)
    return sweep, True


def on_run_ended(experiment: Experiment) -> None:
    """lifecycle subscriber (after the sweep coordinator): a candidate ended; if that ended its fix
    sweep, conclude it."""
    if experiment.sweep_id is None:
        return
    if Sweep.objects.filter(pk=experiment.sweep_id, fix_of__isnull=False, fix_result__isnull=True).exclude(
            status__in=Sweep.ACTIVE_STATUSES).exists():
        fix_sweep_conclude(sweep_id=experiment.sweep_id)


def fix_sweep_conclude(*, sweep_id: int) -> dict | None:
    """Once a fix sweep has ended and none of its trials is active: measure every candidate against
    the parent, store `fix_result`, write the verdict on the parent and publish its advice. Idempotent
    (the result is written once, under the sweep's row lock)."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update(of=("self",)).filter(pk=sweep_id).select_related("fix_of").first()
        if sweep is None or sweep.fix_of is None or sweep.fix_result is not None:
            return None
        if sweep.status in Sweep.ACTIVE_STATUSES:
            return None
        trials = {t.trial_number: t for t in selectors.sweep_trials(sweep=sweep)}
        if any(t.status in Experiment.ACTIVE_STATUSES for t in trials.values()):
            return None  # a cancelled sweep's running trials are still stopping
        parent = sweep.fix_of
        measured = []
        for number, candidate in enumerate(sweep.candidates, start=1):
            trial = trials.get(number)
            measured.append({**candidate, "trial": trial.pk if trial else None,
                             "status": trial.status if trial else "not run",
                             "best_val_accuracy": trial.best_val_accuracy if trial else None})
        parent_best = parent.best_val_accuracy
        if parent_best is None and parent.status == Status.DIVERGED:
            parent_best = 0.0
        verdict = fix_verdict(parent_best, measured)
        verdict["sweep"], verdict["sweep_status"] = sweep.pk, sweep.status
        card = fix_recommendation(parent.config, verdict) if sweep.status == Sweep.Status.FINISHED else None
        if card is not None:
            verdict["recommendation"] = _write_verdict(parent, card, verdict)
        sweep.fix_result = verdict
        sweep.save(update_fields=["fix_result"])
        rows = list(selectors.experiment_recommendations(experiment=parent))
        transaction.on_commit(lambda: events.publish(parent.pk, parent.owner_id,
                                                     live.recommendations_event(parent, rows)))
    return verdict


def _write_verdict(parent: Experiment, card: dict, verdict: dict) -> int:
    """Store the verdict on the parent, replacing an earlier verdict: a verified fix first of all its
    advice; "nothing helped" (information) right after its problems. Returns the row's id."""
    Recommendation.objects.filter(experiment=parent, kind__in=("verified_fix", "verified_none")).delete()
    evidence = {k: v for k, v in verdict.items() if k != "recommendation"}
    if card["kind"] == "verified_fix":
        Recommendation.objects.filter(experiment=parent).update(rank=F("rank") + 1)
        priority_rank, rank = 0, 0  # before a critical card too: it is the measured answer to it
    else:
        problems = [r for r in selectors.experiment_recommendations(experiment=parent)
                    if r.kind not in INFO_KINDS]
        last = problems[-1] if problems else None
        priority_rank = last.priority_rank if last else PRIORITY_RANK["low"]
        rank = (last.rank + 1) if last else 0
        Recommendation.objects.filter(experiment=parent, priority_rank=priority_rank, rank__gte=rank).update(
            rank=F("rank") + 1)
        card = {**card, "priority": last.priority if last else "low"}
    row = Recommendation.objects.create(
        experiment=parent, kind=card["kind"], priority=card["priority"], priority_rank=priority_rank, rank=rank,
        title=card["title"][:200], rationale=card["rationale"], changes=card["changes"],
        confidence=card["confidence"], evidence=evidence)
    return row.pk
