"""The recommender's rows: advice stored when a run ends, Apply & Run, whether advice helped."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from experiments import events, live, selectors
from experiments.models import Experiment, Recommendation
from experiments.recommender import LabRecord, analyze
from experiments.services.runs import experiment_create

Status = Experiment.Status

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
MIN_EPOCHS_FOR_ADVICE_AFTER_CANCEL = 2
VERIFIED_KINDS = ("verified_fix", "verified_none")


def on_run_ended(experiment: Experiment) -> None:
    """lifecycle subscriber: advice for runs that trained and ended on their own terms.

    Not for a run that never started (nothing to say), a failed one (its error says it all),
    or a pruned sweep trial (its curve was cut short on purpose).
    """
    if experiment.started_at is None or experiment.status in (Status.FAILED, Status.PRUNED):
        return
    recommendations_generate(experiment_id=experiment.pk)


def recommendations_generate(*, experiment_id: int) -> list[Recommendation]:
    """Analyse a finished run, replace its Recommendation rows, publish them, and record
    the outcome of the recommendation that created this run (if any)."""
    experiment = Experiment.objects.get(pk=experiment_id)
    if experiment.status not in Experiment.FINISHED_STATUSES:
        return []
    _record_advice_outcome(experiment)
    if experiment.status == Status.CANCELLED and experiment.epochs_done < MIN_EPOCHS_FOR_ADVICE_AFTER_CANCEL:
        return []
    analysis = analyze(selectors.run_summary(experiment=experiment),
                       selectors.recommender_history(experiment=experiment),
                       lab=LabRecord(selectors.recommendation_outcomes()))
    with transaction.atomic():
        # A Find-the-fix verdict (services/fixes.py) is measured, not derived: it survives a re-analysis.
        Recommendation.objects.filter(experiment=experiment).exclude(kind__in=VERIFIED_KINDS).delete()
        Recommendation.objects.bulk_create([
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
    experiment.performance_category, experiment.analysis = analysis.category, analysis.summary
    # The whole stored list, a kept verdict included: the event replaces what the page shows.
    rows = list(selectors.experiment_recommendations(experiment=experiment))
    events.publish(experiment.pk, experiment.owner_id, live.recommendations_event(experiment, rows))
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
