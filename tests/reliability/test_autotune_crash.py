"""An autotune survives its worker being SIGKILLed mid-trial: the reconciler requeues the trial,
another worker resumes it from its checkpoint, and the autotune still ends with a tested final
trial (real `celery worker` subprocesses)."""

from __future__ import annotations

import signal

import pytest
from django.utils import timezone

from experiments import services
from experiments.models import Experiment, Sweep
from experiments.services.autotune import autotune_create
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Workers here sleep 20 ms a batch: a rung-0 trial takes a few seconds, long enough to kill it mid-way.
RUNGS = [{"train_size": 2000, "epochs": 3}, {"train_size": 3000, "epochs": 3}, {"train_size": 3000, "epochs": 4}]


def test_an_autotune_whose_worker_is_killed_mid_trial_still_finishes(workers, user):
    first = workers()
    first.wait_ready()
    sweep = autotune_create(owner=user, minutes=1, rungs=RUNGS, parallelism=1)

    def running_trial():
        return Experiment.objects.filter(sweep=sweep, status=Experiment.Status.RUNNING, epochs_done__gte=1).first()

    victim = wait_for(running_trial, timeout=60, message="a trial in the middle of its training")
    first.kill(signal.SIGKILL)
    first.wait_exit(10)

    second = workers()
    second.wait_ready()
    # The killed worker's last heartbeat, aged past the stale limit: the reconciler requeues the trial.
    Experiment.objects.filter(pk=victim.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(seconds=5))
    assert victim.pk in services.runs_reconcile(stale_after_seconds=1)["requeued_stale"]

    wait_for(lambda: Sweep.objects.get(pk=sweep.pk).status not in Sweep.ACTIVE_STATUSES, timeout=150,
             message="the autotune to finish after the crash")
    victim.refresh_from_db()
    assert victim.attempts == 2  # resumed by the second worker, not restarted as a new trial
    assert victim.status in (Experiment.Status.SUCCEEDED, Experiment.Status.PRUNED)
    final = (Experiment.objects.filter(sweep=sweep, sweep_rung=len(RUNGS) - 1)
             .order_by("-trial_number").first())
    assert final is not None and final.status == Experiment.Status.SUCCEEDED and final.test_accuracy is not None
    assert not Experiment.objects.filter(sweep=sweep, status__in=Experiment.ACTIVE_STATUSES).exists()
