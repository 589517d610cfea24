"""Runs survive their worker being killed or stopped, Redis losing its data, and the database
dropping connections: real `celery worker` subprocesses, the reconciler, the lease."""

from __future__ import annotations

import signal
import time

import pytest
from django.utils import timezone

from experiments import broker, services
from experiments.models import Experiment
from tests.conftest import wait_for_status
from tests.reliability import CONFIG, epochs_of, is_postgres, wait_for_epoch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

def test_a_sigkilled_worker_s_run_is_resumed_from_its_checkpoint_by_the_reconciler(workers, user):
    first = workers()
    first.wait_ready()
    experiment = services.experiment_create(owner=user, config=CONFIG)
    wait_for_epoch(experiment, 2, first)
    first.kill(signal.SIGKILL)
    first.wait_exit(10)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING and 2 <= experiment.epochs_done < 8

    # Fresh heartbeat: not stale yet, the reconciler leaves the run alone.
    assert services.runs_reconcile(stale_after_seconds=60)["requeued_stale"] == []
    second = workers()
    second.wait_ready()
    # The killed worker's last heartbeat, aged past the stale limit.
    Experiment.objects.filter(pk=experiment.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(seconds=5))
    report = services.runs_reconcile(stale_after_seconds=1)
    assert report["requeued_stale"] == [experiment.pk]
    # Resending touched the heartbeat: an immediate second pass does not pile up deliveries.
    assert services.runs_reconcile(stale_after_seconds=1)["requeued_stale"] == []

    wait_for_status(experiment, Experiment.Status.SUCCEEDED, timeout=90)
    assert experiment.attempts == 2
    assert epochs_of(experiment) == list(range(1, 9))


def test_sigterm_hands_the_run_back_and_another_worker_finishes_it(workers, user):
    first = workers()
    first.wait_ready()
    experiment = services.experiment_create(owner=user, config=CONFIG)
    wait_for_epoch(experiment, 2, first)
    started = time.monotonic()
    first.proc.send_signal(signal.SIGTERM)  # a deploy stopping the worker (warm shutdown)
    assert first.wait_exit(30) == 0, first.output()[-3000:]
    assert time.monotonic() - started < 10, "the worker waited for the run instead of handing it back"
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.QUEUED, first.output()[-3000:]
    assert 2 <= experiment.epochs_done < 8
    assert experiment.finished_at is None and not experiment.cancel_requested
    assert experiment.task_id in broker.broker_task_ids()  # re-enqueued, not lost

    second = workers()
    second.wait_ready()
    wait_for_status(experiment, Experiment.Status.SUCCEEDED, timeout=90)
    assert experiment.attempts == 2
    assert epochs_of(experiment) == list(range(1, 9))


def test_runs_queued_when_redis_loses_its_data_are_re_enqueued_and_all_complete(private_redis, workers, user):
    config = {**CONFIG, "epochs": 2}
    runs = [services.experiment_create(owner=user, config=config) for _ in range(3)]
    assert {run.task_id for run in runs} <= broker.broker_task_ids()
    private_redis.stop()  # no persistence: every message is gone
    private_redis.start()
    assert broker.broker_task_ids() == set()

    report = services.runs_reconcile(queued_min_age_seconds=0)
    assert sorted(report["requeued_queued"]) == sorted(run.pk for run in runs)
    assert services.runs_reconcile(queued_min_age_seconds=0)["requeued_queued"] == []  # already queued

    env = {"REDIS_URL": private_redis.url}
    workers(env=env).wait_ready()
    for run in runs:
        wait_for_status(run, Experiment.Status.SUCCEEDED, timeout=120)
        assert epochs_of(run) == [1, 2]
        assert run.attempts == 1


def test_a_dropped_database_connection_does_not_lose_or_duplicate_epochs(workers, user):
    from django.db import connection

    if not is_postgres():
        pytest.skip("PostgreSQL only: terminates the worker's server-side connection")
    worker = workers()
    worker.wait_ready()
    experiment = services.experiment_create(owner=user, config={**CONFIG, "epochs": 6})
    wait_for_epoch(experiment, 2, worker)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert cursor.fetchone()[0] >= 1
    wait_for_status(experiment, Experiment.Status.SUCCEEDED, timeout=90)
    assert epochs_of(experiment) == [1, 2, 3, 4, 5, 6]
    assert "database unavailable" in worker.output()


def test_a_stale_heartbeat_is_refreshed_between_batches(user, settings, monkeypatch):
    """Long epochs: should_stop touches heartbeat_at every TUNER_HEARTBEAT_SECONDS."""
    settings.TUNER_DISPATCH_RUNS = False
    settings.TUNER_HEARTBEAT_SECONDS = 0.0
    experiment = services.experiment_create(owner=user, config=CONFIG)
    lease = services.experiment_claim(experiment_id=experiment.pk)
    old = timezone.now() - timezone.timedelta(hours=1)
    Experiment.objects.filter(pk=experiment.pk).update(heartbeat_at=old)
    experiment.refresh_from_db()
    monitor = services.RunMonitor(experiment, lease)
    assert monitor.should_stop() is False
    experiment.refresh_from_db()
    assert experiment.heartbeat_at > old
    assert services.runs_reconcile(stale_after_seconds=60)["requeued_stale"] == []
