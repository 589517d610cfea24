"""Diagnosis while the run trains: findings stored and published at the epoch they appear, runs
stopped with the reason when they asked for it, sweep trials pruned by diagnostic pruning, the
API and CLI flags validated; one run end-to-end through a real Celery worker."""

from __future__ import annotations

import asyncio
import io

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from experiments import events, services
from experiments.models import Experiment, Sweep
from experiments.services.diagnosis import experiment_diagnose_epoch
from tests.conftest import wait_for_status

Status = Experiment.Status
# sgd at 1e-5 on 1 000 images: 15 steps an epoch, val accuracy stays near 10 % (measured: 13.6 % on 5 000)
STUCK = {"hidden_layers": [32], "train_size": 1000, "batch_size": 64, "lr_schedule": "constant", "dropout": 0.0,
         "optimizer": "sgd", "learning_rate": 1e-5, "epochs": 6}
# adam at 1.0: the loss explodes in the first epoch
EXPLODING = {"hidden_layers": [32], "train_size": 1000, "batch_size": 64, "dropout": 0.0, "optimizer": "adam",
             "learning_rate": 1.0, "epochs": 6}


def test_a_stuck_run_with_stop_on_diagnosis_stops_at_epoch_2_with_the_reason(direct_delivery, user):
    experiment = services.experiment_create(owner=user, config=STUCK, stop_on_diagnosis=True)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    # Like the trainer's early stopping: succeeded, tested on the weights it has, weights kept.
    assert experiment.status == Status.SUCCEEDED
    assert experiment.epochs_done == 2
    assert experiment.message.startswith("stopped at epoch 2: not learning — val ")
    assert "raise the learning rate (1e-05 → 0.0001)" in experiment.message
    assert experiment.test_accuracy is not None and experiment.weights_path
    [finding] = experiment.diagnoses
    assert finding["kind"] == "not_learning" and finding["severity"] == "critical" and finding["epoch"] == 2
    assert finding["changes"] == {"learning_rate": 0.0001}
    # Two epochs are too few for the curve rules: the finding itself is the advice to apply.
    top = experiment.recommendations.first()
    assert top.kind == "lr_too_low" and top.changes == {"learning_rate": 0.0001}
    assert top.rationale.startswith("Recognised while the run trained, at epoch 2: not learning")


def test_without_stop_on_diagnosis_the_finding_is_shown_and_the_run_goes_on(direct_delivery, user):
    experiment = services.experiment_create(owner=user, config={**STUCK, "epochs": 3})
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.SUCCEEDED and experiment.epochs_done == 3
    assert not experiment.message.startswith("stopped")
    assert [f["kind"] for f in experiment.diagnoses] == ["not_learning"]  # once, at its first epoch


def test_an_exploding_run_with_stop_on_diagnosis_ends_diverged_with_the_reason(direct_delivery, user):
    experiment = services.experiment_create(owner=user, config=EXPLODING, stop_on_diagnosis=True)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.DIVERGED
    assert experiment.message.startswith("stopped at epoch 1: loss exploded to ")
    assert experiment.message.endswith("; lower the learning rate (1 → 0.1)")
    assert experiment.diagnoses[0]["kind"] == "divergence"


def test_a_divergence_inside_an_epoch_is_diagnosed_too(direct_delivery, user):
    config = {**EXPLODING, "optimizer": "sgd", "learning_rate": 10.0, "hidden_layers": [256, 128]}
    experiment = services.experiment_create(owner=user, config=config, stop_on_diagnosis=True)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.DIVERGED and experiment.epochs_done == 0
    assert experiment.message.startswith("stopped at epoch 1: loss became ")
    [finding] = experiment.diagnoses
    assert finding["kind"] == "divergence" and "trainer" in finding["evidence"]


def test_a_healthy_run_gets_no_critical_finding(direct_delivery, user, quick_config):
    experiment = services.experiment_create(owner=user, config={**quick_config, "lr_schedule": "cosine"},
                                            stop_on_diagnosis=True)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.SUCCEEDED and experiment.epochs_done == 3
    assert not [f for f in experiment.diagnoses if f["severity"] == "critical"]


def test_findings_are_stored_once_and_published_as_diagnosis_events(direct_delivery, user):
    experiment = services.experiment_create(owner=user, config={**STUCK, "epochs": 2})
    received = []

    async def listen():
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.run_group(experiment.pk), channel)
        await asyncio.to_thread(services.experiment_run, experiment_id=experiment.pk)
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=2)
            except TimeoutError:
                return
            received.append(message["event"])
            if message["event"]["type"] == "finished":
                return

    async_to_sync(listen)()
    diagnosis = [event for event in received if event["type"] == "diagnosis"]
    assert len(diagnosis) == 1
    assert diagnosis[0]["finding"]["kind"] == "not_learning"
    epoch_2 = next(i for i, e in enumerate(received) if e["type"] == "epoch" and e["epoch"] == 2)
    assert received.index(diagnosis[0]) > epoch_2  # after the epoch it is about
    experiment.refresh_from_db()
    # The same lease asking again (a re-delivered epoch) adds nothing.
    Experiment.objects.filter(pk=experiment.pk).update(status=Status.RUNNING)
    assert experiment_diagnose_epoch(experiment_id=experiment.pk, lease=experiment.attempts,
                                     config=experiment.config, stop_on_diagnosis=True) is not None
    experiment.refresh_from_db()
    assert len(experiment.diagnoses) == 1


def test_a_stale_lease_cannot_store_findings(direct_delivery, user):
    experiment = services.experiment_create(owner=user, config={**STUCK, "epochs": 2})
    services.experiment_run(experiment_id=experiment.pk)
    Experiment.objects.filter(pk=experiment.pk).update(status=Status.RUNNING, diagnoses=[])
    with pytest.raises(services.LeaseLost):
        experiment_diagnose_epoch(experiment_id=experiment.pk, lease=99, config=STUCK, stop_on_diagnosis=False)
    experiment.refresh_from_db()
    assert experiment.diagnoses == []


# --------------------------------------------------------------------------- sweeps


def test_diagnostic_pruning_prunes_a_hopeless_trial_with_the_plain_reason(direct_delivery, user):
    base = {**STUCK, "epochs": 5}
    sweep = services.sweep_create(owner=user, base_config=base, space={"learning_rate": {"values": [1e-5, 0.01]}},
                                  strategy="grid", parallelism=2, seed=0, diagnostic_pruning=True)
    assert sweep.diagnostic_pruning is True and sweep.pruner == "none"
    rows = list(Experiment.objects.filter(sweep=sweep).order_by("trial_number"))
    for row in rows:
        services.experiment_run(experiment_id=row.pk)
    stuck = next(r for r in rows if r.config["learning_rate"] == 1e-5)
    good = next(r for r in rows if r.config["learning_rate"] == 0.01)
    stuck.refresh_from_db()
    good.refresh_from_db()
    assert stuck.status == Status.PRUNED and stuck.epochs_done == 2
    assert stuck.message.startswith("pruned at epoch 2: not learning — val ")
    assert stuck.message.endswith("near chance; raise the learning rate (1e-05 → 0.0001)")
    assert good.status == Status.SUCCEEDED and good.epochs_done == 5


def test_without_diagnostic_pruning_the_hopeless_trial_runs_to_the_end(direct_delivery, user):
    sweep = services.sweep_create(owner=user, base_config={**STUCK, "epochs": 3},
                                  space={"learning_rate": {"values": [1e-5]}}, strategy="grid", seed=0)
    [row] = Experiment.objects.filter(sweep=sweep)
    services.experiment_run(experiment_id=row.pk)
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED and row.epochs_done == 3
    assert row.diagnoses and row.diagnoses[0]["kind"] == "not_learning"


# adam at 1e-3 vs 1.5e-4 on 2 000 images, 10 epochs at a constant rate: the slow one learns (no critical
# live finding) but its curve cannot reach the fast one's best
CATCH_UP = {"hidden_layers": [32], "train_size": 2000, "batch_size": 64, "lr_schedule": "constant", "dropout": 0.0,
            "optimizer": "adam", "epochs": 10}


def test_diagnostic_pruning_prunes_a_trial_whose_curve_cannot_catch_up_with_the_plain_reason(direct_delivery,
                                                                                           user):
    sweep = services.sweep_create(owner=user, base_config=CATCH_UP,
                                  space={"learning_rate": {"values": [1e-3, 1.5e-4]}}, strategy="grid",
                                  parallelism=2, seed=0, diagnostic_pruning=True)
    rows = list(Experiment.objects.filter(sweep=sweep).order_by("trial_number"))
    good = next(r for r in rows if r.config["learning_rate"] == 1e-3)
    slow = next(r for r in rows if r.config["learning_rate"] == 1.5e-4)
    services.experiment_run(experiment_id=good.pk)  # the leader first: the slow one is judged against it
    services.experiment_run(experiment_id=slow.pk)
    good.refresh_from_db()
    slow.refresh_from_db()
    assert good.status == Status.SUCCEEDED and good.epochs_done == 10
    assert not any(f["severity"] == "critical" for f in slow.diagnoses), slow.diagnoses  # not a problem of a single run
    assert slow.status == Status.PRUNED and slow.epochs_done < 10, slow.message
    leader = f"below the best trial's {100 * good.best_val_accuracy:.1f} % (#{good.trial_number})"
    assert slow.message.startswith(f"pruned at epoch {slow.epochs_done}: ")
    assert slow.message.endswith(leader), slow.message
    assert ("its curve extrapolates to " in slow.message and " at epoch 10 (best " in slow.message) or \
        "plateau — no new best for 3 epochs" in slow.message


def test_without_diagnostic_pruning_the_slow_trial_runs_to_the_end(direct_delivery, user):
    sweep = services.sweep_create(owner=user, base_config={**CATCH_UP, "epochs": 4},
                                  space={"learning_rate": {"values": [1e-3, 1.5e-4]}}, strategy="grid", seed=0)
    for row in Experiment.objects.filter(sweep=sweep).order_by("trial_number"):
        services.experiment_run(experiment_id=row.pk)
    assert set(Experiment.objects.filter(sweep=sweep).values_list("status", "epochs_done")) == {
        (Status.SUCCEEDED, 4)}


# --------------------------------------------------------------------------- API and CLI


def test_the_api_takes_stop_on_diagnosis(api_client, settings, db):
    settings.TUNER_DISPATCH_RUNS = False
    response = api_client.post("/api/experiments/", {"config": STUCK, "stop_on_diagnosis": True}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["stop_on_diagnosis"] is True and response.json()["diagnoses"] == []
    assert Experiment.objects.get(pk=response.json()["id"]).stop_on_diagnosis is True
    default = api_client.post("/api/experiments/", {"config": STUCK}, format="json")
    assert default.json()["stop_on_diagnosis"] is False


@pytest.mark.parametrize("value", ["yes", 1, "true", None, [True], {"a": 1}])
def test_the_api_refuses_a_non_boolean_stop_on_diagnosis(api_client, db, value):
    response = api_client.post("/api/experiments/", {"config": STUCK, "stop_on_diagnosis": value}, format="json")
    assert response.status_code == 400
    assert "Must be true or false" in response.json()["stop_on_diagnosis"][0] or \
        "may not be null" in response.json()["stop_on_diagnosis"][0]
    assert not Experiment.objects.exists()


def test_the_api_takes_diagnostic_pruning_and_refuses_non_booleans(api_client, settings, db):
    settings.TUNER_DISPATCH_RUNS = False
    body = {"base_config": STUCK, "space": {"learning_rate": {"values": [1e-5, 1e-3]}}, "strategy": "grid"}
    created = api_client.post("/api/sweeps/", {**body, "diagnostic_pruning": True}, format="json")
    assert created.status_code == 201, created.json()
    assert Sweep.objects.get(pk=created.json()["id"]).diagnostic_pruning is True
    for value in ("yes", 1, None):
        refused = api_client.post("/api/sweeps/", {**body, "diagnostic_pruning": value}, format="json")
        assert refused.status_code == 400, (value, refused.json())
        assert "diagnostic_pruning" in refused.json()
    assert Sweep.objects.count() == 1


def test_validate_sweep_checks_diagnostic_pruning():
    from experiments.search.space import SweepSpecError, validate_sweep

    plan = validate_sweep(space={"learning_rate": {"values": [0.01]}}, diagnostic_pruning=True)
    assert plan.diagnostic_pruning is True
    with pytest.raises(SweepSpecError) as caught:
        validate_sweep(space={"learning_rate": {"values": [0.01]}}, diagnostic_pruning="yes")
    assert caught.value.errors["diagnostic_pruning"] == ['Must be true or false, got "yes".']


def test_the_cli_flags(db, settings, user):
    settings.TUNER_DISPATCH_RUNS = False
    call_command("train", "--optimizer", "sgd", "--learning-rate", "1e-5", "--epochs", "2", "--user", "alice",
                 "--stop-on-diagnosis", stdout=io.StringIO())
    assert Experiment.objects.get().stop_on_diagnosis is True
    call_command("sweep", "--strategy", "grid", "--param", "learning_rate=0.003,0.01", "--epochs", "2",
                 "--user", "alice", "--diagnostic-pruning", stdout=io.StringIO())
    assert Sweep.objects.get().diagnostic_pruning is True


# --------------------------------------------------------------------------- through a real worker


@pytest.mark.slow
def test_a_real_worker_stops_an_exploding_run_with_the_reason(celery_worker, user):
    experiment = services.experiment_create(owner=user, config=EXPLODING, stop_on_diagnosis=True)
    wait_for_status(experiment, Experiment.FINISHED_STATUSES)
    assert experiment.status == Status.DIVERGED
    assert experiment.message.startswith("stopped at epoch 1: loss exploded to ")
    assert experiment.message.endswith("lower the learning rate (1 → 0.1)")
    assert [f["kind"] for f in experiment.diagnoses] == ["divergence"]


@pytest.mark.slow
def test_a_real_worker_stops_a_stuck_run_and_the_detail_shows_the_finding(celery_worker, api_client, user):
    response = api_client.post("/api/experiments/", {"config": STUCK, "stop_on_diagnosis": True}, format="json")
    experiment = Experiment.objects.get(pk=response.json()["id"])
    wait_for_status(experiment, Experiment.FINISHED_STATUSES)
    detail = api_client.get(f"/api/experiments/{experiment.pk}/").json()
    assert detail["status"] == "succeeded" and detail["epochs_done"] == 2
    assert detail["message"].startswith("stopped at epoch 2: not learning")
    assert detail["diagnoses"][0]["kind"] == "not_learning"
