"""Tune for me end to end through a real Celery worker: a 1-minute budget on tiny rungs ends on
time with a final full-data trial that has a test accuracy."""

from __future__ import annotations

import pytest

from experiments.models import Experiment, Sweep
from experiments.services.autotune import autotune_create
from tests.conftest import wait_for

# Tiny rungs (1 000 images x 1 epoch, 2 000 x 2) and a final of at most 3 epochs on 3 000 images:
# a trial takes well under a second, so a minute holds many of them.
RUNGS = [{"train_size": 1000, "epochs": 1}, {"train_size": 2000, "epochs": 2}, {"train_size": 3000, "epochs": 3}]
GRACE_SECONDS = 30  # the worker finishing the trial running at the deadline, and this machine's load


@pytest.mark.slow
def test_a_one_minute_autotune_ends_on_time_with_a_tested_final_trial(celery_worker, user):
    sweep = autotune_create(owner=user, minutes=1, rungs=RUNGS, parallelism=1)

    wait_for(lambda: Sweep.objects.get(pk=sweep.pk).status not in Sweep.ACTIVE_STATUSES,
             timeout=60 + GRACE_SECONDS, message="the autotune to finish within its budget")

    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.FINISHED
    assert (sweep.finished_at - sweep.created_at).total_seconds() <= 60 + GRACE_SECONDS
    trials = Experiment.objects.filter(sweep=sweep)
    assert trials.filter(sweep_rung=0).count() >= 2  # it searched before it chose
    final = trials.filter(sweep_rung=len(RUNGS) - 1).order_by("-trial_number").first()
    assert final is not None, f"no final trial: {sweep.message}"
    assert final.status == Experiment.Status.SUCCEEDED and final.test_accuracy is not None
    assert final.config["train_size"] == 3000
    assert not trials.filter(status__in=Experiment.ACTIVE_STATUSES).exists()
