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



class SimulatedCrash(BaseException):
    """Stands in for a worker process dying: not an Exception, so nothing catches it."""


def metric_series(experiment):
    return list(EpochMetric.objects.filter(experiment=experiment).order_by("epoch")
                .values_list("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate"))


def crash_during_epoch(monkeypatch, epoch_to_crash: int):
    original = services.RunMonitor.on_batch

    def on_batch(self, epoch, batch, batches):
        if epoch == epoch_to_crash and batch == 2:
            raise SimulatedCrash()
        return original(self, epoch, batch, batches)

    monkeypatch.setattr(services.RunMonitor, "on_batch", on_batch)


def test_a_redelivered_run_resumes_from_its_checkpoint_without_duplicating_epochs(
        direct_delivery, user, quick_config, monkeypatch):
    config = {**quick_config, "epochs": 5}
    reference = services.experiment_create(owner=user, config=config)
    services.experiment_run(experiment_id=reference.pk)

    crashed = services.experiment_create(owner=user, config=config)
    original_on_batch = services.RunMonitor.on_batch
    crash_during_epoch(monkeypatch, epoch_to_crash=3)
    with pytest.raises(SimulatedCrash):
        services.experiment_run(experiment_id=crashed.pk)
    crashed.refresh_from_db()
    assert crashed.status == Experiment.Status.RUNNING and crashed.epochs_done == 2
    monkeypatch.setattr(services.RunMonitor, "on_batch", original_on_batch)

    services.experiment_run(experiment_id=crashed.pk)  # the broker delivers the task again
    crashed.refresh_from_db()
    assert crashed.status == Experiment.Status.SUCCEEDED
    assert crashed.attempts == 2
    assert [row[0] for row in metric_series(crashed)] == [1, 2, 3, 4, 5]
    # Deterministic resume: the same numbers as the run that never crashed.
    assert [row[1:] for row in metric_series(crashed)] == [row[1:] for row in metric_series(reference)]
    reference.refresh_from_db()
    assert crashed.test_accuracy == reference.test_accuracy


def test_a_duplicate_delivery_of_a_finished_run_is_a_no_op(direct_delivery, user, quick_config):
    experiment = services.experiment_create(owner=user, config=quick_config)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    before = (experiment.attempts, experiment.finished_at, metric_series(experiment))
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert (experiment.attempts, experiment.finished_at, metric_series(experiment)) == before
    assert experiment.status == Experiment.Status.SUCCEEDED


def test_a_parallel_duplicate_delivery_takes_over_and_the_old_lease_writes_nothing(
        celery_worker, user, quick_config):
    config = {**quick_config, "epochs": 6, "train_size": 3000}
    experiment = services.experiment_create(owner=user, config=config)
    wait_for(lambda: EpochMetric.objects.filter(experiment=experiment).exists(), message="first epoch")
    # A second delivery while the first is still training (Redis re-delivered it).
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.SUCCEEDED
    assert experiment.attempts == 2
    assert [row[0] for row in metric_series(experiment)] == [1, 2, 3, 4, 5, 6]
    # The first delivery noticed it lost the lease and left the result alone.
    wait_for(lambda: not celery_worker.consumer.controller.state.active_requests
             if hasattr(celery_worker, "consumer") else True, timeout=30, message="worker idle")
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.SUCCEEDED


def test_a_stale_lease_cannot_record_epochs(direct_delivery, user, quick_config):
    from training.trainer import EpochMetrics

    experiment = services.experiment_create(owner=user, config=quick_config)
    old_lease = services.experiment_claim(experiment_id=experiment.pk)
    new_lease = services.experiment_claim(experiment_id=experiment.pk)
    assert (old_lease, new_lease) == (1, 2)
    metrics = EpochMetrics(epoch=1, train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5,
                           learning_rate=0.01, seconds=1.0, samples_per_second=100.0, gradient_norm=1.0,
                           gradient_norm_max=2.0, dead_unit_fraction=0.0)
    with pytest.raises(services.LeaseLost):
        services.experiment_record_epoch(experiment_id=experiment.pk, lease=old_lease, metrics=metrics)
    services.experiment_record_epoch(experiment_id=experiment.pk, lease=new_lease, metrics=metrics)
    assert EpochMetric.objects.filter(experiment=experiment).count() == 1


def test_a_run_that_keeps_killing_its_worker_ends_failed_after_the_attempt_cap(
        direct_delivery, user, quick_config, settings):
    settings.TUNER_MAX_ATTEMPTS = 2
    experiment = services.experiment_create(owner=user, config=quick_config)
    for _ in range(2):
        assert services.experiment_claim(experiment_id=experiment.pk) is not None
    services.experiment_run(experiment_id=experiment.pk)  # third delivery
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.FAILED
    assert "gave up after 2 attempts" in experiment.error_message
    services.experiment_run(experiment_id=experiment.pk)  # and it stays that way
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.FAILED


def test_cancel_mid_run_stops_the_worker_and_keeps_finished_epochs(celery_worker, user, quick_config):
    config = {**quick_config, "epochs": 40, "train_size": 5000}
    experiment = services.experiment_create(owner=user, config=config)
    wait_for(lambda: EpochMetric.objects.filter(experiment=experiment, epoch=2).exists(),
             message="two epochs")
    services.experiment_cancel(experiment=experiment)
    wait_for_status(experiment, Experiment.Status.CANCELLED, timeout=10)
    assert 2 <= experiment.epochs_done < 40
    assert EpochMetric.objects.filter(experiment=experiment).count() == experiment.epochs_done
    assert experiment.test_accuracy is None


def test_cancelling_a_queued_run_means_the_worker_never_trains_it(direct_delivery, user, quick_config):
    experiment = services.experiment_create(owner=user, config=quick_config)
    services.experiment_cancel(experiment=experiment)
    services.experiment_run(experiment_id=experiment.pk)  # the message arrives anyway
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.CANCELLED
    assert experiment.attempts == 0
    assert not EpochMetric.objects.filter(experiment=experiment).exists()


def test_a_diverging_config_ends_diverged(direct_delivery, user, quick_config):
    experiment = services.experiment_create(
        owner=user, config={**quick_config, "optimizer": "sgd", "learning_rate": 10.0})
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.DIVERGED
    assert experiment.message


def test_invalid_stored_config_fails_the_run_with_the_field_errors(direct_delivery, user, quick_config):
    experiment = services.experiment_create(owner=user, config=quick_config)
    Experiment.objects.filter(pk=experiment.pk).update(config={**quick_config, "epochs": 0})
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.FAILED
    assert "epochs" in experiment.error_message


def test_the_quota_refuses_runs_beyond_the_limit(db, user, quick_config, settings):
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 2
    services.experiment_create(owner=user, config=quick_config)
    services.experiment_create(owner=user, config=quick_config)
    with pytest.raises(services.QuotaExceeded, match="limit 2"):
        services.experiment_create(owner=user, config=quick_config)
