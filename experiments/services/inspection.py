"""What a finished run's page inspects that needs the network over the whole test set: the test
images it gets wrong. Computed once, by the worker, before the run's final status is stored (so
a succeeded run never reads "still being computed"), and stored on the run
(`Experiment.misclassified`); the lifecycle subscriber below is the fallback the reconciler
retries when that failed. The web only reads and pages over it.

The stored list, most confidently wrong first (then by index):

    {"indices": [...], "true": [...], "predicted": [...], "confidence": [...],
     "test_count": 10000, "class_names": [...]}
"""

from __future__ import annotations

import logging
from typing import Any

from experiments import inference
from experiments.errors import InvalidState, NotFound
from experiments.models import Experiment

logger = logging.getLogger(__name__)

CONFIDENCE_DECIMALS = 6


def on_run_ended(experiment: Experiment) -> None:
    """lifecycle subscriber: store the misclassified list of a run that has weights (it succeeded).

    Idempotent (the reconciler calls subscribers again for runs left pending): a list already
    stored is kept. Weights that are gone or unusable leave no list (the endpoint says so) and
    are not retried; an unavailable dataset raises, so the run stays pending and is retried.
    """
    if experiment.status != Experiment.Status.SUCCEEDED or not experiment.weights_path:
        return
    if Experiment.objects.filter(pk=experiment.pk, misclassified__isnull=False).exists():
        return
    try:
        misclassified_store(experiment=experiment)
    except (InvalidState, NotFound) as exc:
        logger.warning("run #%s: no misclassified list stored: %s", experiment.pk, exc)


def misclassified_backfill() -> tuple[list[int], list[int]]:
    """Store the list of every succeeded run that has weights but no list (runs that ended before
    lists were stored): (runs now with a list, runs left without one). One run at a time."""
    stored, skipped = [], []
    runs = (Experiment.objects.filter(status=Experiment.Status.SUCCEEDED, misclassified__isnull=True)
            .exclude(weights_path="").order_by("pk"))
    for experiment in runs.iterator():
        on_run_ended(experiment)
        has_list = Experiment.objects.filter(pk=experiment.pk, misclassified__isnull=False).exists()
        (stored if has_list else skipped).append(experiment.pk)
    return stored, skipped


def misclassified_store(*, experiment: Experiment) -> dict[str, Any]:
    """Run the stored network over the test set and store what it gets wrong on the run."""
    record = misclassified_record(experiment=experiment)
    Experiment.objects.filter(pk=experiment.pk).update(misclassified=record)
    experiment.misclassified = record
    return record


def misclassified_record(*, experiment: Experiment) -> dict[str, Any]:
    """What the network in `experiment.weights_path` gets wrong on the test set (not stored)."""
    found = inference.compute_misclassified(experiment)
    return {
        "indices": found.indices.tolist(),
        "true": found.true.tolist(),
        "predicted": found.predicted.tolist(),
        "confidence": [round(float(c), CONFIDENCE_DECIMALS) for c in found.confidence],
        "test_count": found.test_count,
        "class_names": list(found.class_names),
    }
