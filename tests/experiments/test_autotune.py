"""Tune for me through the API, the service and the command line (no workers: TUNER_DISPATCH_RUNS off)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from experiments.models import Experiment, Sweep


@pytest.fixture
def no_dispatch(settings):
    settings.TUNER_DISPATCH_RUNS = False


@pytest.mark.parametrize("payload, field", [
    ({"minutes": -5}, "minutes"), ({"minutes": 0}, "minutes"), ({"minutes": 1e12}, "minutes"),
    ({"minutes": "NaN"}, "minutes"), ({}, "minutes"),
    ({"minutes": 5, "fixed": {"no_such_field": 1}}, "fixed"),
    ({"minutes": 5, "fixed": {"learning_rate": -1}}, "fixed"),
    ({"minutes": 5, "fixed": {"optimizer": "lbfgs"}}, "fixed"),
    ({"minutes": 5, "fixed": [1, 2]}, "fixed"),
    ({"minutes": 5, "surprise": True}, None),
])
def test_hostile_input_is_400(db, api_client, payload, field):
    response = api_client.post("/api/autotune/", payload, format="json")
    assert response.status_code == 400, response.content
    if field:
        assert field in response.json()
    assert not Sweep.objects.exists()


def test_an_autotune_is_a_time_budgeted_sweep_of_rung_zero_trials(transactional_db, api_client, no_dispatch):
    response = api_client.post("/api/autotune/", {"minutes": 10, "fixed": {"activation": "tanh"}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["time_budget_seconds"] == 600 and body["autotune"]["fixed"] == {"activation": "tanh"}
    assert "activation" not in body["space"] and body["anytime"] == []
    sweep = Sweep.objects.get(pk=body["id"])
    assert sweep.budget > Sweep.MAX_BUDGET  # no trial-count cap
    trials = list(Experiment.objects.filter(sweep=sweep).order_by("trial_number"))
    assert [t.sweep_rung for t in trials] == [0, 0]
    assert all(t.config["activation"] == "tanh" and t.config["train_size"] == 5000 and t.config["epochs"] == 2
               for t in trials)
    response = api_client.get(f"/api/sweeps/{sweep.pk}/")
    assert response.status_code == 200 and response.json()["autotune"]["seconds"] == 600


def test_command_line_starts_an_autotune_and_rejects_bad_fields(transactional_db, user, no_dispatch, capsys):
    call_command("autotune", "--minutes", "2", "--fixed", "hidden_layers=[64]", "--owner", user.username)
    sweep = Sweep.objects.get()
    assert sweep.base_config["hidden_layers"] == [64] and "hidden_layers" not in sweep.space
    with pytest.raises(CommandError, match="fixed"):
        call_command("autotune", "--minutes", "2", "--fixed", "bogus=1", "--owner", user.username)
    with pytest.raises(CommandError, match="minutes"):
        call_command("autotune", "--minutes", "-3", "--owner", user.username)
