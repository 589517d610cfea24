"""Graceful hand-backs (deploys, a lost broker connection, database outages) never use up a run's
attempts, never fail it, and never stop a training they did not interrupt."""

from __future__ import annotations

import signal

import pytest

from experiments import services
from experiments.models import Experiment
from tests.conftest import QUICK_CONFIG, wait_for_status
from tests.reliability import CONFIG, epochs_of, is_postgres, wait_for_epoch
from tests.reliability.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stop_request_only_stops_the_trainings_running_when_it_arrives(direct_delivery, user):
    # What a lost broker connection did: Celery SIGTERMs the pool child; the stop request used
    # to stay set for the child's life, so every later run handed itself back at epoch 0.
    assert services.request_worker_stop("broker connection lost") == 0  # nothing was training
    experiment = services.experiment_create(owner=user, config=QUICK_CONFIG)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.SUCCEEDED, experiment.message
    assert (experiment.attempts, experiment.handbacks) == (1, 0)


def test_a_stop_request_hands_back_the_run_it_interrupts_with_an_interrupted_reason(direct_delivery, user,
                                                                                       monkeypatch):
    experiment = services.experiment_create(owner=user, config={**QUICK_CONFIG, "epochs": 4})
    original = services.RunMonitor.on_epoch

    def stop_after_epoch_two(monitor, metrics):
        original(monitor, metrics)
        if metrics.epoch == 2:
            services.request_worker_stop("worker shutting down")  # the SIGTERM handler's call

    monkeypatch.setattr(services.RunMonitor, "on_epoch", stop_after_epoch_two)
    services.experiment_run(experiment_id=experiment.pk)
    monkeypatch.setattr(services.RunMonitor, "on_epoch", original)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.QUEUED
    assert (experiment.attempts, experiment.handbacks, experiment.epochs_done) == (1, 1, 2)
    assert experiment.message.startswith("interrupted after epoch 2: worker shutting down")
    services.experiment_run(experiment_id=experiment.pk)  # the re-sent message
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.SUCCEEDED
    assert epochs_of(experiment) == [1, 2, 3, 4]


@pytest.mark.slow
def test_three_graceful_restarts_during_one_run_do_not_use_up_its_attempts(workers, user, settings):
    assert settings.TUNER_MAX_ATTEMPTS == 3
    experiment = services.experiment_create(owner=user, config={**CONFIG, "epochs": 8})
    for restart, epoch in enumerate((2, 4, 6), 1):
        worker = workers()
        worker.wait_ready()
        wait_for_epoch(experiment, epoch, worker)
        worker.proc.send_signal(signal.SIGTERM)  # a deploy
        assert worker.wait_exit(30) == 0, worker.output()[-3000:]
        experiment.refresh_from_db()
        assert experiment.status == Experiment.Status.QUEUED, worker.output()[-3000:]
        assert experiment.handbacks == restart
    workers().wait_ready()
    wait_for_status(experiment, Experiment.Status.SUCCEEDED, timeout=120)
    assert (experiment.attempts, experiment.handbacks) == (4, 3)
    assert epochs_of(experiment) == list(range(1, 9))


@pytest.mark.slow
def test_a_database_outage_longer_than_the_retries_hands_the_run_back_and_it_finishes(workers, user):
    """The worker reaches PostgreSQL through a proxy of our own; at epoch 3 the proxy cuts every
    connection and refuses new ones for 6 s (longer than the worker's retries)."""
    if not is_postgres():
        pytest.skip("PostgreSQL only")
    from django.db import connection

    settings_db = connection.settings_dict
    with TcpProxy(settings_db.get("HOST") or "127.0.0.1", int(settings_db.get("PORT") or 5432)) as proxy:
        url = (f"postgres://{settings_db.get('USER') or 'postgres'}@127.0.0.1:{proxy.port}/{settings_db['NAME']}")
        env = {"DATABASE_URL": url, "TUNER_DB_RETRIES": "2", "TUNER_HEARTBEAT_SECONDS": "1",
               "TUNER_HEARTBEAT_STALE_SECONDS": "30"}
        worker = workers(env=env)
        worker.wait_ready()
        experiment = services.experiment_create(owner=user, config={**CONFIG, "epochs": 6})
        wait_for_epoch(experiment, 3, worker)
        proxy.cut(seconds=6.0)
        try:
            wait_for_status(experiment, Experiment.Status.SUCCEEDED, timeout=120)
        except BaseException:
            print(worker.output()[-8000:])
            raise
    assert "database unavailable" in worker.output()
    assert epochs_of(experiment) == [1, 2, 3, 4, 5, 6]
    assert experiment.handbacks >= 1, worker.output()[-6000:]  # handed back through the broker, not failed
    assert experiment.attempts - experiment.handbacks == 1  # no crash counted
