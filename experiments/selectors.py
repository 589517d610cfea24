"""Every non-trivial read of experiments."""

from __future__ import annotations

from django.db.models import QuerySet

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
