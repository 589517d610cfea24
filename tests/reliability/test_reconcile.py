"""The reconciler heals everything that can get stuck: runs out of attempts, follow-up work a
dead worker left undone, sweeps with room for trials but none active, runs the broker lacks."""

from __future__ import annotations

import pytest
from django.utils import timezone

from experiments import services
from experiments.models import Experiment, Recommendation
from tests.conftest import QUICK_CONFIG, wait_for_status
from tests.reliability import CONFIG, epochs_of, wait_for_epoch

pytestmark = pytest.mark.django_db(transaction=True)

LR_RANGE = {"learning_rate": {"low": 1e-3, "high": 1e-2, "scale": "log"}}


def test_a_queued_run_out_of_attempts_ends_failed_and_frees_its_slot(direct_delivery, user, settings):
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 1
    stuck = services.experiment_create(owner=user, config=QUICK_CONFIG)
    Experiment.objects.filter(pk=stuck.pk).update(attempts=settings.TUNER_MAX_ATTEMPTS)  # three crashes
    with pytest.raises(services.QuotaExceeded):
        services.experiment_create(owner=user, config=QUICK_CONFIG)

    report = services.runs_reconcile()
    assert report["gave_up"] == [stuck.pk]
    stuck.refresh_from_db()
    assert stuck.status == Experiment.Status.FAILED
    assert stuck.error_message.startswith("gave up after 3 attempts")
    services.experiment_create(owner=user, config=QUICK_CONFIG)  # the slot is free again
    assert services.runs_reconcile()["gave_up"] == []  # idempotent


def test_hand_backs_do_not_count_as_attempts_for_the_reconciler(direct_delivery, user, settings):
    handed_back = services.experiment_create(owner=user, config=QUICK_CONFIG)
    Experiment.objects.filter(pk=handed_back.pk).update(attempts=3, handbacks=3)
    assert services.runs_reconcile()["gave_up"] == []
    services.experiment_run(experiment_id=handed_back.pk)
    handed_back.refresh_from_db()
    assert handed_back.status == Experiment.Status.SUCCEEDED and handed_back.attempts == 4


def worker_killed_after_the_final_commit(experiment: Experiment) -> None:
    """The state a worker leaves when it dies between storing a run's result and the follow-up
    (advice, the sweep's next trials): the final status is stored, post_run_pending still set."""
    services.experiment_run(experiment_id=experiment.pk)
    Recommendation.objects.filter(experiment=experiment).delete()
    Experiment.objects.filter(pk=experiment.pk).update(
        post_run_pending=True, finished_at=timezone.now() - timezone.timedelta(minutes=5))


def test_follow_up_work_a_dead_worker_left_undone_is_done_by_the_reconciler(direct_delivery, user):
    sweep = services.sweep_create(owner=user, base_config=QUICK_CONFIG, space=LR_RANGE, strategy="random",
                                  budget=2, parallelism=1, seed=3)
    (first,) = Experiment.objects.filter(sweep=sweep)
    # The trial ends, but its worker dies before the refill: delete the second trial the
    # follow-up created, as if it never ran.
    worker_killed_after_the_final_commit(first)
    Experiment.objects.filter(sweep=sweep, trial_number=2).delete()
    sweep.__class__.objects.filter(pk=sweep.pk).update(trials_created=1)

    report = services.runs_reconcile()
    assert first.pk in report["followed_up"]
    first.refresh_from_db()
    assert not first.post_run_pending
    assert Recommendation.objects.filter(experiment=first).exists()
    assert Experiment.objects.filter(sweep=sweep, trial_number=2, status="queued").exists()
    assert services.runs_reconcile()["followed_up"] == []


def test_an_active_sweep_with_room_but_no_active_trial_is_filled(direct_delivery, user):
    sweep = services.sweep_create(owner=user, base_config=QUICK_CONFIG, space=LR_RANGE, strategy="random",
                                  budget=3, parallelism=1, seed=4)
    (first,) = Experiment.objects.filter(sweep=sweep)
    # The trial's end was stored by a path that never reached the sweep (a refill that raised).
    Experiment.objects.filter(pk=first.pk).update(status="failed", finished_at=timezone.now(),
                                                  error_message="worker lost")
    report = services.runs_reconcile()
    assert report["sweeps_filled"] == [sweep.pk]
    assert Experiment.objects.filter(sweep=sweep, trial_number=2, status="queued").exists()


@pytest.mark.slow
def test_a_run_created_while_the_broker_is_down_is_201_and_trains_once_it_is_back(private_redis, workers, user,
                                                                                  api_client):
    private_redis.stop()
    response = api_client.post("/api/experiments/", {"config": {**QUICK_CONFIG, "epochs": 2}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    experiment = Experiment.objects.get(pk=response.json()["id"])
    assert Experiment.objects.count() == 1  # the row is the outbox: nothing half-created, nothing doubled

    private_redis.start()
    assert services.runs_reconcile(queued_min_age_seconds=0)["requeued_queued"] == [experiment.pk]
    workers(env={"REDIS_URL": private_redis.url}).wait_ready()
    wait_for_status(experiment, Experiment.Status.SUCCEEDED, timeout=120)
    assert experiment.attempts == 1


@pytest.mark.slow
def test_a_redis_restart_mid_run_strands_nothing_and_later_runs_train_normally(private_redis, workers, user):
    """Redis restarted without persistence while a run trained (prefork, as deployed): Celery
    cancels the task (SIGTERM to the pool child), the run is handed back, its message is gone
    with Redis; the worker's own periodic reconcile sends it again. Runs queued afterwards in
    the same pool child train normally instead of handing themselves back at epoch 0."""
    env = {"REDIS_URL": private_redis.url, "TUNER_RECONCILE_INTERVAL_SECONDS": "2",
           "TUNER_HEARTBEAT_SECONDS": "1", "TUNER_HEARTBEAT_STALE_SECONDS": "5"}
    worker = workers(env=env, pool="prefork")
    worker.wait_ready()
    first = services.experiment_create(owner=user, config={**CONFIG, "epochs": 6})
    wait_for_epoch(first, 2, worker)
    private_redis.stop()
    private_redis.start()
    later = [services.experiment_create(owner=user, config={**CONFIG, "epochs": 2}) for _ in range(2)]
    for run in (first, *later):
        wait_for_status(run, Experiment.Status.SUCCEEDED, timeout=180)
        assert run.attempts - run.handbacks == 1, worker.output()[-3000:]  # no crash counted
    assert epochs_of(first) == [1, 2, 3, 4, 5, 6]
    assert all(epochs_of(run) == [1, 2] for run in later)
    assert all(run.handbacks == 0 for run in later)  # they were not stopped by a stale request
