"""A run travels from a create request through a real Celery worker to stored results."""

from __future__ import annotations

import pytest

from experiments import services
from experiments.models import EpochMetric, Experiment
from tests.conftest import wait_for, wait_for_status


def test_a_queued_run_is_trained_by_the_worker_and_stored(celery_worker, user, quick_config):
    experiment = services.experiment_create(owner=user, config=quick_config, name="first")
    assert experiment.status == Experiment.Status.QUEUED
    wait_for_status(experiment, Experiment.Status.SUCCEEDED)
    epochs = list(EpochMetric.objects.filter(experiment=experiment).values_list("epoch", flat=True))
    assert epochs == [1, 2, 3]
    assert experiment.epochs_done == 3
    assert experiment.attempts == 1
    assert experiment.test_accuracy > 0.5
    assert len(experiment.confusion_matrix) == 10
    assert experiment.started_at <= experiment.finished_at
    assert experiment.weights_path.endswith(f"experiment-{experiment.pk}.npz")
