"""Every non-trivial read of experiments."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from experiments import events
from experiments.models import EpochMetric, Experiment, Recommendation

ORDERING_FIELDS = ("created_at", "best_val_accuracy", "test_accuracy", "status", "name", "epochs_done",
                   "finished_at")


def experiments_visible_to(*, user) -> QuerySet[Experiment]:
    """Runs a user may see: their own (staff review through the admin)."""
    return Experiment.objects.filter(owner=user)


def experiment_list(*, user, status: str | None = None, sweep: int | None = None,
                    ordering: str | None = None) -> QuerySet[Experiment]:
    runs = experiments_visible_to(user=user).select_related("owner")
    if status:
        runs = runs.filter(status__in=status.split(","))
    if sweep is not None and hasattr(Experiment, "sweep"):
        runs = runs.filter(sweep_id=sweep)
    if ordering and ordering.lstrip("-") in ORDERING_FIELDS:
        runs = runs.order_by(ordering, "-id")
    return runs


def experiment_get(*, user, experiment_id: int) -> Experiment | None:
    """The run if `user` may see it, else None (the API answers 404 either way)."""
    return experiments_visible_to(user=user).filter(pk=experiment_id).first()


def experiment_metrics(*, experiment: Experiment) -> QuerySet[EpochMetric]:
    return EpochMetric.objects.filter(experiment=experiment).order_by("epoch")


def experiment_recommendations(*, experiment: Experiment) -> QuerySet[Recommendation]:
    return Recommendation.objects.filter(experiment=experiment).order_by("priority_rank", "rank", "id")


def active_run_count(*, user) -> int:
    return Experiment.objects.filter(owner=user, status__in=Experiment.ACTIVE_STATUSES).count()


HISTORY_LIMIT = 200


def run_summary(*, experiment: Experiment, metrics=None):
    """The recommender's plain-data view of one run (no ORM objects inside)."""
    from experiments.recommender import RunSummary

    if metrics is None:
        metrics = experiment_metrics(experiment=experiment)
    epochs = [
        {field: getattr(m, field) for field in (
            "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
            "samples_per_second", "gradient_norm", "gradient_norm_max", "dead_unit_fraction")}
        for m in metrics
    ]
    return RunSummary(config=experiment.config, status=experiment.status, epochs=epochs,
                      best_val_accuracy=experiment.best_val_accuracy, best_epoch=experiment.best_epoch,
                      test_accuracy=experiment.test_accuracy, message=experiment.message,
                      run_id=experiment.pk)


def recommender_history(*, experiment: Experiment) -> list:
    """The owner's other finished runs with a result, newest first (metrics not needed)."""
    others = (Experiment.objects.filter(owner_id=experiment.owner_id, status=Experiment.Status.SUCCEEDED,
                                        best_val_accuracy__isnull=False)
              .exclude(pk=experiment.pk).order_by("-finished_at")[:HISTORY_LIMIT])
    return [run_summary(experiment=other, metrics=[]) for other in others]


def recommendation_get(*, user, recommendation_id: int) -> Recommendation | None:
    return (Recommendation.objects.select_related("experiment")
            .filter(pk=recommendation_id, experiment__owner=user).first())


def recommender_stats() -> list[dict]:
    """Per kind: how often advice was given, applied, evaluated, and how often it helped."""
    from django.db.models import Avg, Count, Q

    rows = (Recommendation.objects.values("kind")
            .annotate(given=Count("id"),
                      applied=Count("id", filter=Q(applied_at__isnull=False)),
                      evaluated=Count("id", filter=Q(improved__isnull=False)),
                      helped=Count("id", filter=Q(improved=True)),
                      mean_delta=Avg("outcome_delta"))
            .order_by("kind"))
    stats = []
    for row in rows:
        row["help_rate"] = row["helped"] / row["evaluated"] if row["evaluated"] else None
        stats.append(row)
    return stats


# --------------------------------------------------------------------------- live snapshots


def metrics_as_dict(metric: EpochMetric) -> dict[str, Any]:
    from experiments.services import METRIC_FIELDS

    return {"epoch": metric.epoch, **{name: getattr(metric, name) for name in METRIC_FIELDS}}


def recommendation_as_dict(row: Recommendation) -> dict[str, Any]:
    return {"id": row.pk, "kind": row.kind, "priority": row.priority, "title": row.title,
            "rationale": row.rationale, "changes": row.changes, "confidence": row.confidence,
            "evidence": row.evidence, "outcome_delta": row.outcome_delta, "improved": row.improved}


def visible_run(*, user, experiment_id: int) -> Experiment | None:
    """The run if `user` may watch it live: its owner, or any staff member."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_staff:
        return Experiment.objects.filter(pk=experiment_id).first()
    return experiment_get(user=user, experiment_id=experiment_id)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def experiment_state(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": experiment.pk,
        "name": experiment.name,
        "status": experiment.status,
        "config": experiment.config,
        "epochs": (experiment.config or {}).get("epochs"),
        "epochs_done": experiment.epochs_done,
        "best_val_accuracy": experiment.best_val_accuracy,
        "best_epoch": experiment.best_epoch,
        "test_accuracy": experiment.test_accuracy,
        "test_loss": experiment.test_loss,
        "confusion_matrix": experiment.confusion_matrix,
        "per_class_accuracy": experiment.per_class_accuracy,
        "message": experiment.message,
        "error": experiment.error_message,
        "performance_category": experiment.performance_category,
        "analysis": experiment.analysis,
        "cancel_requested": experiment.cancel_requested,
        "attempts": experiment.attempts,
        "parent": experiment.parent_id,
        "created_at": _iso(experiment.created_at),
        "started_at": _iso(experiment.started_at),
        "finished_at": _iso(experiment.finished_at),
    }


def snapshot(*, user, experiment_id: int) -> dict[str, Any] | None:
    """{"type": "snapshot", "seq", "experiment", "metrics", "recommendations"}, or None if not visible.

    Reads the seq counter *before* the database (see the module docstring); the
    caller must already be in the run's group.
    """
    seq = events.current_seq(experiment_id)
    experiment = visible_run(user=user, experiment_id=experiment_id)
    if experiment is None:
        return None
    metrics = [metrics_as_dict(m) for m in experiment_metrics(experiment=experiment)]
    recommendations = [recommendation_as_dict(r)
                       for r in experiment_recommendations(experiment=experiment)]
    return {"type": "snapshot", "seq": seq, "experiment": experiment_state(experiment), "metrics": metrics,
            "recommendations": recommendations}


