"""Find the fix: the service (candidates as a sweep, the verdict on the parent), the API, the CLI and a
real worker end to end."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from experiments import services
from experiments.errors import InvalidState, StorageLimitExceeded
from experiments.models import Experiment, Recommendation, Sweep
from experiments.services.fixes import experiment_find_fix, fix_sweep_conclude
from tests.conftest import wait_for

Status = Experiment.Status
ACTIVE = Experiment.ACTIVE_STATUSES

# SGD at a tiny rate on a small subset: clearly diagnosable (lr_too_low), a fraction of a second an epoch.
SLOW_SGD = {"optimizer": "sgd", "learning_rate": 1e-4, "hidden_layers": [32], "epochs": 3, "train_size": 2000,
            "batch_size": 64, "lr_schedule": "constant", "dropout": 0.0, "seed": 5}


def finished_run(user, config=None, *, best=0.5, status=Status.SUCCEEDED, advice=None):
    """A finished run stored without training, with chosen advice (the candidates come from it)."""
    run = services.experiment_create(owner=user, config=config or SLOW_SGD, enqueue=False, name="parent")
    Experiment.objects.filter(pk=run.pk).update(status=status, best_val_accuracy=best, epochs_done=3,
                                                started_at=timezone.now(), finished_at=timezone.now())
    for rank, (kind, changes) in enumerate(advice if advice is not None else
                                           [("lr_too_low", {"learning_rate": 0.001}), ("more_epochs", {"epochs": 6}),
                                            ("performance", {})]):
        Recommendation.objects.create(experiment=run, kind=kind, priority="high" if changes else "low",
                                      priority_rank=1 if changes else 3, rank=rank, title=kind, rationale="",
                                      changes=changes)
    run.refresh_from_db()
    return run


def set_result(trial, *, status=Status.SUCCEEDED, best=None):
    Experiment.objects.filter(pk=trial.pk).update(status=status, best_val_accuracy=best, epochs_done=3,
                                                  finished_at=timezone.now())
    trial.refresh_from_db()
    services.sweep_fill(sweep_id=trial.sweep_id)
    from experiments.services.fixes import on_run_ended
    on_run_ended(trial)


def trials(sweep):
    return list(Experiment.objects.filter(sweep=sweep).order_by("trial_number"))


# --------------------------------------------------------------------------- the service


def test_the_fix_sweep_tries_each_candidate_on_the_parents_config_two_at_a_time(db, user):
    parent = finished_run(user)
    sweep, created = experiment_find_fix(experiment=parent, owner=user)
    assert created and sweep.strategy == "candidates" and sweep.fix_of_id == parent.pk
    assert sweep.name == f"Find the fix for #{parent.pk}" and sweep.parallelism == 2
    changes = [c["changes"] for c in sweep.candidates]
    assert changes == [{"learning_rate": 0.001}, {"epochs": 6}, {"learning_rate": 0.0003},
                       {"learning_rate": 0.001, "epochs": 6}]
    assert sweep.budget == 4 and sweep.base_config == parent.config
    rows = trials(sweep)
    assert [t.trial_number for t in rows] == [1, 2] and all(t.status == Status.QUEUED for t in rows)
    for trial, change in zip(rows, changes):
        assert trial.config == {**parent.config, **change}
        assert trial.config["seed"] == parent.config["seed"] and trial.config["train_size"] == 2000
    assert set(sweep.space) == {"learning_rate", "epochs"}  # the sweep pages show the varied fields


def test_the_winner_becomes_the_first_recommendation_with_its_measured_gains(db, user):
    parent = finished_run(user, best=0.50)
    sweep, _ = experiment_find_fix(experiment=parent, owner=user)
    results = {1: 0.70, 2: 0.55, 3: 0.62, 4: 0.70}  # 1 and 4 tie: 1 changes fewer fields
    for number in range(1, 5):
        trial = Experiment.objects.get(sweep=sweep, trial_number=number)
        set_result(trial, best=results[number])
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.FINISHED
    result = sweep.fix_result
    assert [c["gain_points"] for c in result["candidates"]] == [20.0, 5.0, 12.0, 20.0]
    assert result["winner"] == 0 and result["helped"] == 4
    advice = list(parent.recommendations.order_by("priority_rank", "rank", "id"))
    top = advice[0]
    assert top.kind == "verified_fix" and top.priority == "high" and top.pk == result["recommendation"]
    assert top.changes == {"learning_rate": 0.001}
    assert top.title == "Verified: raise the learning rate to 0.001 (+20.0 points measured)"
    assert "+5.0 points" in top.rationale and "+12.0 points" in top.rationale
    assert top.evidence["candidates"][0]["trial"] == trials(sweep)[0].pk
    assert fix_sweep_conclude(sweep_id=sweep.pk) is None  # written once
    assert parent.recommendations.filter(kind="verified_fix").count() == 1
    # A re-analysis of the parent (the reconciler) keeps the measured verdict, first, and the
    # list it publishes (which replaces what an open page shows) still holds it.
    published = services.recommendations_generate(experiment_id=parent.pk)
    assert parent.recommendations.filter(kind="verified_fix").count() == 1
    assert published[0].kind == "verified_fix"


def test_when_nothing_helped_the_parent_gets_an_explanation_after_its_problems(db, user):
    parent = finished_run(user, best=0.841)
    sweep, _ = experiment_find_fix(experiment=parent, owner=user)
    for number, (status, best) in enumerate([(Status.SUCCEEDED, 0.83), (Status.DIVERGED, None),
                                             (Status.SUCCEEDED, 0.841), (Status.FAILED, None)], start=1):
        set_result(Experiment.objects.get(sweep=sweep, trial_number=number), status=status, best=best)
    sweep.refresh_from_db()
    assert sweep.fix_result["winner"] is None
    kinds = list(parent.recommendations.order_by("priority_rank", "rank", "id").values_list("kind", flat=True))
    assert kinds == ["lr_too_low", "more_epochs", "verified_none", "performance"]
    card = parent.recommendations.get(kind="verified_none")
    assert card.title == "Tried 3 changes; none beat this run's 84.1 %" and card.changes == {}
    assert "diverged" in card.rationale and "not measured (failed)" in card.rationale


def test_one_active_fix_per_run_and_a_new_one_once_it_ended(db, user):
    parent = finished_run(user)
    first, created = experiment_find_fix(experiment=parent, owner=user)
    again, created_again = experiment_find_fix(experiment=parent, owner=user)
    assert created and not created_again and again.pk == first.pk
    assert Sweep.objects.filter(fix_of=parent).count() == 1
    services.sweep_cancel(sweep=first)
    second, created = experiment_find_fix(experiment=parent, owner=user)
    assert created and second.pk != first.pk


@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING, Status.FAILED, Status.PRUNED])
def test_only_finished_runs_that_trained_can_be_fixed(db, user, status):
    parent = finished_run(user)
    Experiment.objects.filter(pk=parent.pk).update(status=status)
    with pytest.raises(InvalidState):
        experiment_find_fix(experiment=parent, owner=user)
    assert not Sweep.objects.exists()


def test_a_run_without_problem_advice_has_nothing_to_try(db, user):
    parent = finished_run(user, advice=[("performance", {}), ("success", {})])
    with pytest.raises(InvalidState, match="Nothing to try"):
        experiment_find_fix(experiment=parent, owner=user)


def test_fix_trials_wait_for_free_run_slots_like_any_sweep(db, user, settings):
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 2
    parent = finished_run(user)
    services.experiment_create(owner=user, config=SLOW_SGD)
    sweep, _ = experiment_find_fix(experiment=parent, owner=user)
    assert len(trials(sweep)) == 1  # one free slot, not its parallelism of 2
    Experiment.objects.filter(owner=user, sweep__isnull=True, status=Status.QUEUED).update(
        status=Status.CANCELLED, finished_at=timezone.now())
    services.sweep_fill(sweep_id=sweep.pk)  # as when one of the owner's runs ends
    assert len(trials(sweep)) == 2


def test_the_storage_limit_refuses_a_fix_that_could_not_start(db, user, settings):
    parent = finished_run(user)
    Experiment.objects.filter(pk=parent.pk).update(weights_bytes=10_000)
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = 5_000
    with pytest.raises(StorageLimitExceeded):
        experiment_find_fix(experiment=parent, owner=user)


# --------------------------------------------------------------------------- the API


def test_find_fix_through_the_api(db, api_client, user):
    parent = finished_run(user)
    response = api_client.post(f"/api/experiments/{parent.pk}/find-fix/", {}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["parent"] == parent.pk and body["status"] == "running" and len(body["candidates"]) == 4
    assert [c["status"] for c in body["candidates"]] == ["queued", "queued", "waiting", "waiting"]
    assert body["candidates"][0]["changes"] == {"learning_rate": 0.001} and body["fix_result"] is None
    again = api_client.post(f"/api/experiments/{parent.pk}/find-fix/")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    listed = api_client.get(f"/api/experiments/{parent.pk}/fixes/")
    assert listed.status_code == 200 and [s["id"] for s in listed.json()] == [body["id"]]
    # The fix sweep is an ordinary sweep on the sweep pages too.
    detail = api_client.get(f"/api/sweeps/{body['id']}/")
    assert detail.status_code == 200 and detail.json()["strategy"] == "candidates"
    assert api_client.get(f"/sweeps/{body['id']}/").status_code in (200, 302)
    assert body["id"] in [s["id"] for s in api_client.get("/api/sweeps/").json()["results"]]


def test_find_fix_api_refusals(db, api_client, other_client, user):
    parent = finished_run(user)
    assert other_client.post(f"/api/experiments/{parent.pk}/find-fix/").status_code == 404
    assert other_client.get(f"/api/experiments/{parent.pk}/fixes/").status_code == 404
    assert api_client.post("/api/experiments/999999/find-fix/").status_code == 404
    assert api_client.get("/api/experiments/999999/fixes/").status_code == 404
    garbage = api_client.post(f"/api/experiments/{parent.pk}/find-fix/", data="{not json",
                              content_type="application/json")
    assert garbage.status_code == 400
    unknown = api_client.post(f"/api/experiments/{parent.pk}/find-fix/", {"budget": 9}, format="json")
    assert unknown.status_code == 400 and "budget" in unknown.json()
    listish = api_client.post(f"/api/experiments/{parent.pk}/find-fix/", [1, 2], format="json")
    assert listish.status_code == 400
    assert not Sweep.objects.exists()
    Experiment.objects.filter(pk=parent.pk).update(status=Status.RUNNING)
    busy = api_client.post(f"/api/experiments/{parent.pk}/find-fix/")
    assert busy.status_code == 409 and "still running" in busy.json()["detail"]
    bare = finished_run(user, advice=[("performance", {})])
    nothing = api_client.post(f"/api/experiments/{bare.pk}/find-fix/")
    assert nothing.status_code == 409 and "Nothing to try" in nothing.json()["detail"]
    assert api_client.post("/api/sweeps/", {"space": {"epochs": {"values": [1, 2]}}, "strategy": "candidates"},
                           format="json").status_code == 400  # not a strategy users pick
    anonymous = api_client.__class__()
    assert anonymous.post(f"/api/experiments/{parent.pk}/find-fix/").status_code == 401


def test_find_fix_is_throttled_like_other_sweep_writes(db, api_client, user, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "sweep_write", "2/min")
    parent = finished_run(user)
    codes = [api_client.post(f"/api/experiments/{parent.pk}/find-fix/").status_code for _ in range(3)]
    assert codes == [201, 200, 429]
    assert api_client.get(f"/api/experiments/{parent.pk}/fixes/").status_code == 200  # reads are not


# --------------------------------------------------------------------------- real training


def test_find_fix_end_to_end_in_process(direct_delivery, user):
    parent = services.experiment_create(owner=user, config=SLOW_SGD, name="slow sgd")
    services.experiment_run(experiment_id=parent.pk)
    parent.refresh_from_db()
    assert parent.status == Status.SUCCEEDED
    sweep, _ = experiment_find_fix(experiment=parent, owner=user)
    while queued := list(Experiment.objects.filter(sweep=sweep, status__in=ACTIVE).order_by("trial_number")):
        for experiment in queued:
            services.experiment_run(experiment_id=experiment.pk)
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.FINISHED and sweep.fix_result is not None
    assert all(c["gain_points"] is not None for c in sweep.fix_result["candidates"])
    top = parent.recommendations.order_by("priority_rank", "rank", "id").first()
    assert top.kind == "verified_fix"  # a 1e-4 SGD rate is easy to beat
    winner = sweep.fix_result["candidates"][sweep.fix_result["winner"]]
    assert top.changes == winner["changes"] and winner["gain_points"] > 0


@pytest.mark.slow
def test_find_fix_through_a_real_worker(celery_worker, api_client, user):
    parent = services.experiment_create(owner=user, config=SLOW_SGD, name="slow sgd")
    wait_for(lambda: Experiment.objects.filter(pk=parent.pk, status=Status.SUCCEEDED, post_run_pending=False)
             .exists(), 120, message="the parent to finish with its advice")
    response = api_client.post(f"/api/experiments/{parent.pk}/find-fix/")
    assert response.status_code == 201, response.content
    sweep_id = response.json()["id"]
    wait_for(lambda: Sweep.objects.filter(pk=sweep_id, fix_result__isnull=False).exists(), 240,
             message="the fix sweep to conclude")
    body = api_client.get(f"/api/experiments/{parent.pk}/fixes/").json()[0]
    assert body["status"] == "finished" and all(c["status"] == "succeeded" for c in body["candidates"])
    assert all(isinstance(c["gain_points"], float) for c in body["candidates"])
    kinds = [r["kind"] for r in api_client.get(f"/api/experiments/{parent.pk}/").json()["recommendations"]]
    assert kinds[0] == "verified_fix" or "verified_none" in kinds
    assert body["recommendation"] in [r["id"] for r in
                                      api_client.get(f"/api/experiments/{parent.pk}/").json()["recommendations"]]


# --------------------------------------------------------------------------- the CLI


def test_the_cli_queues_a_fix_and_follows_it_to_the_verdict(direct_delivery, user):
    import threading

    from django.db import connections

    parent = finished_run(user, best=0.3)
    errors: list[BaseException] = []

    def play_the_workers():  # trains the candidates the command queues, as workers would
        try:
            wait_for(lambda: Sweep.objects.filter(fix_of=parent).exists(), 30, message="the fix sweep")
            sweep = Sweep.objects.get(fix_of=parent)
            while queued := list(Experiment.objects.filter(sweep=sweep, status__in=ACTIVE)):
                for experiment in queued:
                    services.experiment_run(experiment_id=experiment.pk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=play_the_workers)
    thread.start()
    out = io.StringIO()
    try:
        call_command("find_fix", str(parent.pk), "--user", user.username, "--wait", "--timeout", "120", stdout=out)
    finally:
        thread.join(120)
    assert not errors, errors
    sweep = Sweep.objects.get(fix_of=parent)
    text = out.getvalue()
    assert f"fix sweep #{sweep.pk}" in text and "4 candidates" in text
    assert "gain" in text and ("Verified:" in text or "none beat" in text)
    assert text.count("succeeded") == 4


def test_cli_errors_are_clear(db, user):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no run #424242"):
        call_command("find_fix", "424242", "--user", user.username, stdout=io.StringIO())
    bare = finished_run(user, advice=[("performance", {})])
    with pytest.raises(CommandError, match="Nothing to try"):
        call_command("find_fix", str(bare.pk), "--user", user.username, stdout=io.StringIO())


# --------------------------------------------------------------------------- the evaluation


@pytest.mark.slow
def test_evaluate_recommender_find_fix_scores_one_case(direct_delivery):
    import json

    from experiments.recommender.evaluation import half_cases

    case = next(c for c in half_cases("development") if c.expected == "lr_too_low" and not c.large)
    out = io.StringIO()
    call_command("evaluate_recommender", "--find-fix", "--half", "development", "--only", "lr_too_low",
                 "--limit", "1", "--seeds", "1", "--quick", "--json", stdout=out)
    text = out.getvalue()
    [outcome] = json.loads(text.strip().splitlines()[-2])["outcomes"]
    assert outcome["case_id"] == case.id and outcome["candidates"] == len(outcome["gains"]) >= 1
    parent = Experiment.objects.get(name=f"fix-eval {case.id} seed {case.seeds[0]}")
    tried = Experiment.objects.filter(name__startswith=f"fix-eval {case.id} seed {case.seeds[0]} candidate")
    assert tried.count() == outcome["candidates"]
    assert all(t.config["seed"] == parent.config["seed"] for t in tried)
    if outcome["helped"]:
        assert outcome["winner_gain"] > 0 and outcome["check_seed"] == case.seeds[0] + 1000
        recheck = Experiment.objects.get(name=f"fix-eval {case.id} seed {case.seeds[0]} recheck")
        assert recheck.config == {**parent.config, "seed": case.seeds[0] + 1000}
    assert "any candidate helped (same seed):" in text and "verified fix holds on a new seed:" in text
