"""Recommendations end to end: written when a run finishes, applied, and scored by their outcome."""

from __future__ import annotations

import pytest
from django.utils import timezone

from experiments import services
from experiments.models import EpochMetric, Experiment, Recommendation
from experiments.recommender.lab import MIN_OUTCOMES_FOR_RANKING
from tests.conftest import wait_for, wait_for_status
from training.config import TrainingConfig


def run_now(owner, config, **kwargs) -> Experiment:
    experiment = services.experiment_create(owner=owner, config=config, **kwargs)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    return experiment


def test_a_diverging_run_through_the_worker_gets_a_critical_lower_the_rate_advice(
        celery_worker, api_client, quick_config):
    config = {**quick_config, "optimizer": "sgd", "learning_rate": 8.0}
    body = api_client.post("/api/experiments/", {"config": config}, format="json").json()
    experiment = wait_for_status(Experiment.objects.get(pk=body["id"]), Experiment.Status.DIVERGED)
    # Written right after the final status is stored.
    wait_for(lambda: Recommendation.objects.filter(experiment=experiment).exists(), message="advice")
    recommendations = api_client.get(f"/api/experiments/{experiment.pk}/").json()["recommendations"]
    top = recommendations[0]
    assert top["kind"] == "divergence" and top["priority"] == "critical"
    assert top["changes"]["learning_rate"] < 8.0
    TrainingConfig.from_dict({**config, **top["changes"]})


def test_an_under_capacity_run_is_diagnosed_as_underfitting(direct_delivery, user, quick_config):
    experiment = run_now(user, {**quick_config, "hidden_layers": [4], "activation": "tanh", "epochs": 6,
                                "train_size": 2000, "learning_rate": 0.001})
    top = experiment.recommendations.first()
    assert top.kind == "underfitting" and top.priority == "high"
    assert top.changes["hidden_layers"][0] > 4  # more capacity first
    assert "train" in top.rationale.lower()
    assert experiment.performance_category == "poor"


def test_every_stored_recommendation_validates_and_is_ordered_by_priority(direct_delivery, user, quick_config):
    experiment = run_now(user, {**quick_config, "optimizer": "sgd", "learning_rate": 0.0005})
    rows = list(experiment.recommendations.all())
    assert rows, "a finished run always gets at least its performance summary"
    ranks = [r.priority_rank for r in rows]
    assert ranks == sorted(ranks)
    for row in rows:
        merged = TrainingConfig.from_dict({**experiment.config, **row.changes})
        assert all(experiment.config[k] != v for k, v in row.changes.items() if k != "hidden_layers")
        assert merged


def test_apply_and_run_creates_the_child_with_the_changes_and_lineage(api_client, direct_delivery, user,
                                                                       quick_config):
    parent = run_now(user, {**quick_config, "optimizer": "sgd", "learning_rate": 6.0})
    advice = parent.recommendations.exclude(changes={}).first()
    response = api_client.post(f"/api/recommendations/{advice.pk}/apply/")
    assert response.status_code == 201
    child = Experiment.objects.get(pk=response.json()["id"])
    assert child.parent == parent
    assert child.source_recommendation == advice
    assert child.config == TrainingConfig.from_dict({**parent.config, **advice.changes}).to_dict()
    advice.refresh_from_db()
    assert advice.applied_at is not None

    services.experiment_run(experiment_id=child.pk)
    advice.refresh_from_db()
    child.refresh_from_db()
    assert advice.outcome_experiment == child
    assert advice.improved is True  # from diverged to a working run
    assert advice.outcome_delta == pytest.approx(child.best_val_accuracy - (parent.best_val_accuracy or 0))

    stats = {row["kind"]: row for row in api_client.get("/api/recommender/stats/").json()}
    assert stats[advice.kind]["applied"] >= 1 and stats[advice.kind]["helped"] >= 1


def test_other_users_recommendations_are_404(other_client, direct_delivery, user, quick_config):
    experiment = run_now(user, quick_config)
    advice = Recommendation.objects.filter(experiment=experiment).first()
    assert advice is not None
    assert other_client.post(f"/api/recommendations/{advice.pk}/apply/").status_code == 404
    assert other_client.post("/api/recommendations/999999/apply/").status_code == 404


def test_a_cancelled_run_with_fewer_than_two_epochs_gets_no_advice(direct_delivery, user, quick_config):
    experiment = services.experiment_create(owner=user, config=quick_config)
    services.experiment_cancel(experiment=experiment)
    assert services.recommendations_generate(experiment_id=experiment.pk) == []


def _finished_smothered_run(owner) -> Experiment:
    """A stored, finished [32] run with dropout 0.6 that learns slowly: over_regularisation and
    lr_too_low are both high-priority advice for it (see tests/recommender/test_lab.py)."""
    from tests.recommender.test_lab import smothered_run

    summary = smothered_run()
    experiment = Experiment.objects.create(owner=owner, config=summary.config, status=Experiment.Status.SUCCEEDED,
                                           started_at=timezone.now(), finished_at=timezone.now(),
                                           epochs_done=len(summary.epochs))
    EpochMetric.objects.bulk_create(EpochMetric(experiment=experiment, **epoch) for epoch in summary.epochs)
    return experiment


def _record_outcomes(owner, kind: str, *, evaluated: int, helped: int) -> None:
    """Applied advice of `kind` whose child runs finished, `helped` of them better than their parent."""
    parent = Experiment.objects.create(owner=owner, config={}, status=Experiment.Status.SUCCEEDED)
    Recommendation.objects.bulk_create(
        Recommendation(experiment=parent, kind=kind, priority="high", title=kind, rationale="",
                       applied_at=timezone.now(), improved=n < helped, outcome_delta=0.01 if n < helped else -0.01)
        for n in range(evaluated))


@pytest.mark.django_db
def test_the_labs_measured_help_rate_across_users_ranks_advice_of_equal_priority(user, other_user):
    experiment = _finished_smothered_run(user)
    kinds = [row.kind for row in services.recommendations_generate(experiment_id=experiment.pk)]
    assert kinds[:2] == ["over_regularisation", "lr_too_low"]  # by the rules' own confidence

    # Other people's Apply & Run outcomes: lowering dropout rarely helped, raising the rate did.
    _record_outcomes(other_user, "over_regularisation", evaluated=MIN_OUTCOMES_FOR_RANKING, helped=1)
    _record_outcomes(other_user, "lr_too_low", evaluated=MIN_OUTCOMES_FOR_RANKING, helped=9)
    rows = services.recommendations_generate(experiment_id=experiment.pk)
    assert [row.kind for row in rows][:2] == ["lr_too_low", "over_regularisation"]
    assert rows[0].evidence["lab"] == {"evaluated": MIN_OUTCOMES_FOR_RANKING, "helped": 9, "help_rate": 0.9,
                                       "used_for_ranking": True}
    assert f"applied and measured {MIN_OUTCOMES_FOR_RANKING} times; it helped 9 (90 %)" in rows[0].rationale
