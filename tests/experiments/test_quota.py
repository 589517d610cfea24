"""The per-user quota of active runs holds on every path: plain runs, sweeps, extends, retries."""

from __future__ import annotations

import pytest
from rest_framework.throttling import SimpleRateThrottle

from experiments import services
from experiments.models import Experiment
from tests.conftest import QUICK_CONFIG

pytestmark = pytest.mark.django_db(transaction=True)

LR_RANGE = {"learning_rate": {"low": 1e-3, "high": 1e-2, "scale": "log"}}


def active(user) -> int:
    return Experiment.objects.filter(owner=user, status__in=("queued", "running")).count()


def test_a_sweep_extended_past_the_quota_never_holds_more_active_runs_than_the_quota(direct_delivery, user,
                                                                                   settings):
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 3
    sweep = services.sweep_create(owner=user, base_config=QUICK_CONFIG, space=LR_RANGE, strategy="random",
                                  budget=1, parallelism=8, seed=1)
    services.sweep_extend(sweep=sweep, budget=30)
    assert active(user) == 3  # was 9: trials were created without the quota
    sweep.refresh_from_db()
    assert sweep.trials_created == 3


def test_a_sweep_waiting_for_slots_takes_them_when_the_owner_s_other_runs_end(direct_delivery, user, settings):
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 2
    runs = [services.experiment_create(owner=user, config=QUICK_CONFIG) for _ in range(2)]
    sweep = services.sweep_create(owner=user, base_config=QUICK_CONFIG, space=LR_RANGE, strategy="random",
                                  budget=4, parallelism=2, seed=1)
    sweep.refresh_from_db()
    assert Experiment.objects.filter(sweep=sweep).count() == 0
    assert sweep.message.startswith("waiting for a free run slot")
    services.experiment_cancel(experiment=runs[0])
    assert Experiment.objects.filter(sweep=sweep, status="queued").count() == 1
    assert active(user) == 2


def test_retrying_a_trial_respects_the_quota(direct_delivery, user, settings):
    sweep = services.sweep_create(owner=user, base_config=QUICK_CONFIG, space=LR_RANGE, strategy="random",
                                  budget=2, parallelism=1, seed=1)
    (first,) = Experiment.objects.filter(sweep=sweep)
    services.experiment_cancel(experiment=first)  # the sweep moves on to trial 2
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 1
    sweep.refresh_from_db()
    services.sweep_cancel(sweep=sweep)
    services.experiment_create(owner=user, config=QUICK_CONFIG)
    sweep.status = "running"
    sweep.save(update_fields=["status"])
    with pytest.raises(services.ServiceError):
        services.sweep_trial_retry(sweep=sweep, experiment=first)
    assert active(user) == 1


def test_sweep_creation_and_extension_are_throttled(api_client, user, monkeypatch, settings):
    settings.TUNER_DISPATCH_RUNS = False
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "sweep_write", "2/min")
    body = {"base_config": QUICK_CONFIG, "space": LR_RANGE, "strategy": "random", "budget": 1, "parallelism": 1}
    answers = [api_client.post("/api/sweeps/", body, format="json").status_code for _ in range(3)]
    assert answers == [201, 201, 429]
    sweep_id = Experiment.objects.filter(owner=user).first().sweep_id
    assert api_client.post(f"/api/sweeps/{sweep_id}/extend/", {"budget": 5}, format="json").status_code == 429
