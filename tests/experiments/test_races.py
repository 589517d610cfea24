"""Races between a worker and the web: a stale object never deletes a claimed run, a stale lease
never touches the weights file."""

from __future__ import annotations

import pytest

from experiments import services, storage
from experiments.models import Experiment
from tests.conftest import QUICK_CONFIG
from training.config import TrainingConfig
from training.data import load_fashion_mnist, prepare_dataset
from training.trainer import fit

pytestmark = pytest.mark.django_db(transaction=True)


def test_deleting_a_run_a_worker_claimed_in_between_is_refused(direct_delivery, user):
    experiment = services.experiment_create(owner=user, config=QUICK_CONFIG)
    stale = Experiment.objects.get(pk=experiment.pk)  # what the view loaded: still queued
    services.experiment_claim(experiment_id=experiment.pk)  # a worker takes it meanwhile
    with pytest.raises(services.InvalidState, match="running"):
        services.experiment_delete(experiment=stale)
    assert Experiment.objects.filter(pk=experiment.pk, status="running").exists()


def test_a_stale_lease_never_writes_the_weights_file(direct_delivery, user):
    experiment = services.experiment_create(owner=user, config=QUICK_CONFIG)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    weights = services.artifact_path("weights", experiment.pk)
    stored = storage.read_bytes(weights)

    config = TrainingConfig.from_dict({**QUICK_CONFIG, "epochs": 1, "seed": 7})
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=config.validation_fraction, seed=7,
                           train_size=config.train_size)
    other_result = fit(config, data)
    with pytest.raises(services.LeaseLost):
        services.experiment_finish(experiment_id=experiment.pk, lease=experiment.attempts - 1, result=other_result)
    assert storage.read_bytes(weights) == stored
    assert not [name for name in storage.list_files("weights") if ".tmp" in name]  # no temporary file left
