"""The REST API under /api/: what a browser (session) or a script (token) can do with its runs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from experiments import services, storage
from experiments.live import METRIC_COLUMNS
from experiments.models import EpochMetric, Experiment, Recommendation
from tests.conftest import wait_for_status
from training.config import TrainingConfig, config_schema
from training.data import CLASS_NAMES

pytestmark = pytest.mark.django_db

Status = Experiment.Status
LIST_URL = "/api/experiments/"

LIST_KEYS = {"id", "name", "status", "config", "epochs_done", "best_val_accuracy", "best_epoch",
             "test_accuracy", "test_loss", "parent", "created_at", "started_at", "finished_at",
             "duration_seconds"}
DETAIL_KEYS = LIST_KEYS | {"confusion_matrix", "per_class_accuracy", "class_names", "message",
                           "error_message", "children", "attempts", "worker_host", "metrics",
                           "recommendations", "links", "performance_category", "analysis",
                           "analysis_pending", "diagnoses", "stop_on_diagnosis", "source_recommendation"}
METRIC_KEYS = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate",
               "seconds", "samples_per_second", "gradient_norm", "gradient_norm_max", "dead_unit_fraction"}
RECOMMENDATION_KEYS = {"id", "kind", "priority", "title", "rationale", "changes", "confidence", "evidence",
                       "applied_at", "outcome_delta", "improved"}


def detail_url(experiment_id: int, action: str = "") -> str:
    return f"/api/experiments/{experiment_id}/" + (f"{action}/" if action else "")


def make_run(owner, name: str = "", status: str = Status.QUEUED, **fields) -> Experiment:
    """A run created the way the API does (the service), then moved to `status` for the test.

    With the non-transactional `db` fixture the on-commit enqueue never fires: no worker runs it.
    """
    experiment = services.experiment_create(owner=owner, config={"epochs": 3}, name=name)
    if status != Status.QUEUED or fields:
        Experiment.objects.filter(pk=experiment.pk).update(status=status, **fields)
        experiment.refresh_from_db()
    return experiment


def add_epoch(experiment: Experiment, epoch: int, val_accuracy: float = 0.5) -> EpochMetric:
    return EpochMetric.objects.create(
        experiment=experiment, epoch=epoch, train_loss=1.0 / epoch, train_accuracy=0.4 + epoch / 100,
        val_loss=1.1 / epoch, val_accuracy=val_accuracy, learning_rate=0.001, seconds=0.5,
        samples_per_second=1000.0, gradient_norm=1.5, gradient_norm_max=3.0, dead_unit_fraction=0.1)


# --------------------------------------------------------------------------- create


def test_create_queues_a_run_with_missing_fields_defaulted(api_client, user):
    response = api_client.post(LIST_URL, {"name": "first", "config": {"epochs": 3, "optimizer": "sgd"}},
                               format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert body["status"] == "queued"
    assert body["name"] == "first"
    assert body["config"] == TrainingConfig.from_dict({"epochs": 3, "optimizer": "sgd"}).to_dict()
    assert list(body["config"]) == list(TrainingConfig().to_dict())  # field order, even on PostgreSQL
    assert body["config"]["learning_rate"] == TrainingConfig().learning_rate
    experiment = Experiment.objects.get(pk=body["id"])
    assert experiment.owner == user
    assert experiment.status == Status.QUEUED


def test_create_with_an_empty_body_uses_the_default_config(api_client):
    response = api_client.post(LIST_URL, {}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["config"] == TrainingConfig().to_dict()
    assert response.json()["name"] == ""


def test_invalid_config_answers_400_listing_every_bad_field(api_client):
    config = {"learning_rate": -1, "optimizer": "lbfgs", "hidden_layers": [0, 64], "epochs": "many",
              "batch_size": 64}

    response = api_client.post(LIST_URL, {"config": config}, format="json")

    assert response.status_code == 400
    errors = response.json()["config"]
    assert set(errors) == {"learning_rate", "optimizer", "hidden_layers", "epochs"}
    for messages in errors.values():
        assert messages and all(isinstance(m, str) and m for m in messages)
    assert "lbfgs" in errors["optimizer"][0]
    assert not Experiment.objects.exists()


def test_unknown_config_field_is_400_naming_it(api_client):
    response = api_client.post(LIST_URL, {"config": {"lerning_rate": 0.1}}, format="json")

    assert response.status_code == 400
    assert list(response.json()["config"]) == ["lerning_rate"]
    assert "Unknown field" in response.json()["config"]["lerning_rate"][0]


@pytest.mark.parametrize("config", [[1, 2], "adam", 3, True, None])
def test_config_that_is_not_an_object_is_400(api_client, config):
    response = api_client.post(LIST_URL, {"config": config}, format="json")

    assert response.status_code == 400
    assert isinstance(response.json()["config"], list)
    assert not Experiment.objects.exists()


def test_unknown_top_level_field_is_400_not_silently_ignored(api_client):
    # A common slip: hyperparameters at the top level instead of under "config".
    response = api_client.post(LIST_URL, {"epochs": 3}, format="json")

    assert response.status_code == 400
    assert "Unknown field" in response.json()["epochs"][0]


def test_name_longer_than_200_characters_is_400(api_client):
    response = api_client.post(LIST_URL, {"name": "x" * 201}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"name"}


@pytest.mark.parametrize("payload, content_type", [
    (b'{"config": {', "application/json"),
    (b'[{"name": "x"}]', "application/json"),
    (b'{"config": {"learning_rate": NaN}}', "application/json"),
    (b"name=x", "application/x-www-form-urlencoded"),
])
def test_malformed_bodies_are_4xx_not_500(api_client, payload, content_type):
    response = api_client.generic("POST", LIST_URL, payload, content_type=content_type)

    assert response.status_code in (400, 415)
    assert not Experiment.objects.exists()


def test_create_with_own_parent_links_the_runs(api_client, user):
    parent = make_run(user, "parent", Status.SUCCEEDED)

    response = api_client.post(LIST_URL, {"config": {"epochs": 2}, "parent": parent.pk}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["parent"] == parent.pk
    assert api_client.get(detail_url(parent.pk)).json()["children"] == [response.json()["id"]]


def test_parent_must_be_one_of_your_runs(api_client, other_user):
    foreign = make_run(other_user, "bob's")

    for parent in (foreign.pk, 999999):
        response = api_client.post(LIST_URL, {"parent": parent}, format="json")
        assert response.status_code == 400
        assert set(response.json()) == {"parent"}
    assert Experiment.objects.count() == 1


@override_settings(TUNER_MAX_ACTIVE_RUNS_PER_USER=2)
def test_quota_of_active_runs_answers_429(api_client, user, other_user):
    first = make_run(user, "one")
    make_run(user, "two")
    make_run(other_user, "bob's does not count")

    response = api_client.post(LIST_URL, {"name": "three"}, format="json")

    assert response.status_code == 429
    assert "limit 2" in response.json()["detail"]
    assert Experiment.objects.filter(owner=user).count() == 2

    # A finished run frees its slot.
    services.experiment_cancel(experiment=first)
    assert api_client.post(LIST_URL, {"name": "three"}, format="json").status_code == 201


# --------------------------------------------------------------------------- list


def test_list_shows_only_your_runs_newest_first(api_client, user, other_user):
    older = make_run(user, "older")
    newer = make_run(user, "newer")
    make_run(other_user, "bob's")

    response = api_client.get(LIST_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [run["id"] for run in body["results"]] == [newer.pk, older.pk]
    assert set(body["results"][0]) == LIST_KEYS


def test_list_filters_by_comma_separated_statuses(api_client, user):
    make_run(user, "q")
    ok = make_run(user, "ok", Status.SUCCEEDED)
    bad = make_run(user, "bad", Status.FAILED)
    make_run(user, "cancelled", Status.CANCELLED)

    response = api_client.get(LIST_URL, {"status": "succeeded, failed"})

    assert response.status_code == 200
    assert {run["id"] for run in response.json()["results"]} == {ok.pk, bad.pk}
    assert api_client.get(LIST_URL, {"status": ""}).json()["count"] == 4


@pytest.mark.parametrize("params, field", [
    ({"status": "done"}, "status"),
    ({"status": "queued,bogus"}, "status"),
    ({"ordering": "owner"}, "ordering"),
    ({"ordering": "--name"}, "ordering"),
    ({"ordering": "config"}, "ordering"),
    ({"sweep": "abc"}, "sweep"),
    ({"limit": "abc"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"format": "xml"}, "format"),
])
def test_list_rejects_bad_query_parameters_with_400(api_client, user, params, field):
    make_run(user)

    response = api_client.get(LIST_URL, params)

    assert response.status_code == 400
    assert field in response.json()


def test_list_accepts_a_sweep_filter(api_client, user):
    make_run(user)

    assert api_client.get(LIST_URL, {"sweep": 1}).status_code == 200


def test_list_orders_by_an_allowed_field_either_way(api_client, user):
    low = make_run(user, "b", Status.SUCCEEDED, best_val_accuracy=0.5)
    high = make_run(user, "a", Status.SUCCEEDED, best_val_accuracy=0.9)
    middle = make_run(user, "c", Status.SUCCEEDED, best_val_accuracy=0.7)

    def ids(ordering):
        response = api_client.get(LIST_URL, {"ordering": ordering})
        assert response.status_code == 200
        return [run["id"] for run in response.json()["results"]]

    assert ids("-best_val_accuracy") == [high.pk, middle.pk, low.pk]
    assert ids("best_val_accuracy") == [low.pk, middle.pk, high.pk]
    assert ids("name") == [high.pk, low.pk, middle.pk]


def test_list_paginates_with_limit_and_offset(api_client, user):
    runs = [make_run(user, f"run {i}") for i in range(5)]
    newest_first = [run.pk for run in reversed(runs)]

    page = api_client.get(LIST_URL, {"limit": 2}).json()
    assert page["count"] == 5
    assert [run["id"] for run in page["results"]] == newest_first[:2]
    assert page["next"] is not None and page["previous"] is None

    last = api_client.get(LIST_URL, {"limit": 2, "offset": 4}).json()
    assert [run["id"] for run in last["results"]] == newest_first[4:]
    assert last["next"] is None


def test_list_limit_is_capped_at_200(api_client, user):
    Experiment.objects.bulk_create(Experiment(owner=user, config={}, name=f"r{i}") for i in range(205))

    body = api_client.get(LIST_URL, {"limit": 1000}).json()

    assert body["count"] == 205
    assert len(body["results"]) == 200
    assert len(api_client.get(LIST_URL).json()["results"]) == 50


# --------------------------------------------------------------------------- detail


def test_detail_has_every_key_with_metrics_by_epoch_and_recommendations_by_priority(api_client, user):
    parent = make_run(user, "parent", Status.SUCCEEDED)
    experiment = make_run(user, "child", Status.SUCCEEDED, parent=parent, epochs_done=3, test_accuracy=0.8,
                          confusion_matrix=[[1] * 10] * 10, per_class_accuracy=[0.8] * 10)
    for epoch in (2, 3, 1):
        add_epoch(experiment, epoch)
    Recommendation.objects.create(experiment=experiment, kind="low", priority="low", priority_rank=3,
                                  title="Maybe", rationale="...", changes={"dropout": 0.3})
    Recommendation.objects.create(experiment=experiment, kind="crit", priority="critical", priority_rank=0,
                                  title="Fix the learning rate", rationale="...",
                                  changes={"learning_rate": 0.001}, confidence=0.9)

    response = api_client.get(detail_url(experiment.pk))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert body["parent"] == parent.pk
    assert body["test_accuracy"] == 0.8
    assert body["class_names"] == list(CLASS_NAMES)
    assert [m["epoch"] for m in body["metrics"]] == [1, 2, 3]
    assert set(body["metrics"][0]) == METRIC_KEYS
    assert [r["priority"] for r in body["recommendations"]] == ["critical", "low"]
    assert set(body["recommendations"][0]) == RECOMMENDATION_KEYS
    assert body["recommendations"][0]["changes"] == {"learning_rate": 0.001}
    assert body["links"]["csv"].endswith(f"/api/experiments/{experiment.pk}/metrics/?format=csv")
    assert body["links"]["ws"].startswith("ws://") and str(experiment.pk) in body["links"]["ws"]
    assert body["links"]["weights"] is None  # nothing stored yet
    assert api_client.get(detail_url(parent.pk)).json()["children"] == [experiment.pk]


def test_config_schema_is_the_training_schema(api_client):
    response = api_client.get("/api/config-schema/")

    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(config_schema()))  # tuples become lists


# --------------------------------------------------------------------------- other users, anonymous


@pytest.mark.parametrize("method, action", [
    ("get", ""), ("delete", ""), ("post", "cancel"), ("post", "rerun"), ("get", "metrics"),
    ("get", "weights"),
])
def test_another_users_run_is_404_for_every_action(other_client, user, method, action):
    experiment = make_run(user, "alice's", Status.SUCCEEDED)

    response = getattr(other_client, method)(detail_url(experiment.pk, action))

    assert response.status_code == 404
    experiment.refresh_from_db()
    assert experiment.status == Status.SUCCEEDED
    assert Experiment.objects.count() == 1


def test_another_users_metrics_csv_is_404_json(other_client, user):
    experiment = make_run(user)

    response = other_client.get(detail_url(experiment.pk, "metrics"), {"format": "csv"})

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_an_id_that_does_not_fit_the_database_is_404(api_client):
    assert api_client.get(detail_url(10**30)).status_code == 404


@pytest.mark.parametrize("method, url", [
    ("get", LIST_URL), ("post", LIST_URL), ("get", "/api/config-schema/"), ("get", detail_url(1)),
    ("post", detail_url(1, "cancel")), ("get", detail_url(1, "metrics")),
])
def test_anonymous_requests_are_refused(method, url):
    response = getattr(APIClient(), method)(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


# --------------------------------------------------------------------------- token auth


def test_a_script_obtains_a_token_and_uses_it(user, other_user):
    make_run(user, "mine")
    make_run(other_user, "bob's")
    client = APIClient()

    response = client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-1"},
                           format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert response.json()["expiry"]
    # A new token every time (one per script or device); the earlier ones keep working.
    again = client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-1"})
    assert again.status_code == 200 and again.json()["token"] != token

    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listed = client.get(LIST_URL)
    assert listed.status_code == 200
    assert [run["name"] for run in listed.json()["results"]] == ["mine"]
    created = client.post(LIST_URL, {"config": {"epochs": 1}}, format="json")
    assert created.status_code == 201  # no CSRF token needed with token auth


def test_wrong_credentials_get_400_with_a_message(user):
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "wrong"},
                                format="json")

    assert response.status_code == 400
    assert "Unable to log in" in response.json()["non_field_errors"][0]
    missing = APIClient().post("/api/auth/token/", {"username": "alice"}, format="json")
    assert missing.status_code == 400
    assert "password" in missing.json()


def test_an_invalid_token_is_401(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert client.get(LIST_URL).status_code == 401


def test_session_writes_need_the_csrf_token(user):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice", password="alice-password-1")

    assert client.get(LIST_URL).status_code == 200
    assert client.post(LIST_URL, {}, format="json").status_code == 403


# --------------------------------------------------------------------------- cancel, delete, rerun


def test_cancel_a_queued_run(api_client, user):
    experiment = make_run(user)

    response = api_client.post(detail_url(experiment.pk, "cancel"))

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert set(response.json()) == DETAIL_KEYS
    experiment.refresh_from_db()
    assert experiment.status == Status.CANCELLED


def test_cancel_a_running_run_asks_the_worker_to_stop(api_client, user):
    experiment = make_run(user, status=Status.RUNNING)

    response = api_client.post(detail_url(experiment.pk, "cancel"))

    assert response.status_code == 200
    assert response.json()["status"] == "running"
    experiment.refresh_from_db()
    assert experiment.cancel_requested


def test_cancel_a_finished_run_is_409(api_client, user):
    experiment = make_run(user, status=Status.SUCCEEDED)

    response = api_client.post(detail_url(experiment.pk, "cancel"))

    assert response.status_code == 409
    assert "already succeeded" in response.json()["detail"]


def test_delete_a_running_run_is_409(api_client, user):
    experiment = make_run(user, status=Status.RUNNING)

    response = api_client.delete(detail_url(experiment.pk))

    assert response.status_code == 409
    assert "detail" in response.json()
    assert Experiment.objects.filter(pk=experiment.pk).exists()


def test_delete_a_finished_run_removes_it_and_its_weights(api_client, user):
    experiment = make_run(user, status=Status.SUCCEEDED)
    weights = f"weights/experiment-{experiment.pk}.npz"
    storage.save_bytes(weights, b"stored weights")
    Experiment.objects.filter(pk=experiment.pk).update(weights_path=weights)
    add_epoch(experiment, 1)

    response = api_client.delete(detail_url(experiment.pk))

    assert response.status_code == 204
    assert not Experiment.objects.filter(pk=experiment.pk).exists()
    assert not EpochMetric.objects.exists()
    assert storage.read_bytes(weights) is None
    assert api_client.get(detail_url(experiment.pk)).status_code == 404


def test_rerun_creates_a_queued_child_with_the_same_config(api_client, user):
    parent = make_run(user, "base", Status.SUCCEEDED)

    response = api_client.post(detail_url(parent.pk, "rerun"))

    assert response.status_code == 201
    body = response.json()
    assert body["parent"] == parent.pk
    assert body["status"] == "queued"
    assert body["config"] == parent.config
    assert body["id"] != parent.pk
    assert body["stop_on_diagnosis"] is False


def test_rerun_keeps_stop_on_diagnosis(api_client, user):
    parent = make_run(user, "base", Status.SUCCEEDED)
    Experiment.objects.filter(pk=parent.pk).update(stop_on_diagnosis=True)

    body = api_client.post(detail_url(parent.pk, "rerun")).json()

    assert body["stop_on_diagnosis"] is True
    assert Experiment.objects.get(pk=body["id"]).stop_on_diagnosis


@override_settings(TUNER_MAX_ACTIVE_RUNS_PER_USER=1)
def test_rerun_respects_the_quota(api_client, user):
    parent = make_run(user, "active")

    response = api_client.post(detail_url(parent.pk, "rerun"))

    assert response.status_code == 429
    assert Experiment.objects.count() == 1


# --------------------------------------------------------------------------- metrics and weights


def test_metrics_as_json_ordered_by_epoch(api_client, user):
    experiment = make_run(user, status=Status.RUNNING)
    for epoch in (3, 1, 2):
        add_epoch(experiment, epoch)

    response = api_client.get(detail_url(experiment.pk, "metrics"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert [row["epoch"] for row in response.json()] == [1, 2, 3]
    assert set(response.json()[0]) == METRIC_KEYS


def test_metrics_as_csv_download(api_client, user):
    experiment = make_run(user, status=Status.RUNNING)
    for epoch in (2, 1):
        add_epoch(experiment, epoch, val_accuracy=0.25 * epoch)

    # Even a client that prefers JSON gets CSV when it asks for ?format=csv.
    response = api_client.get(detail_url(experiment.pk, "metrics") + "?format=csv",
                              HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="experiment-{experiment.pk}-metrics.csv"')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == list(METRIC_COLUMNS)
    assert set(rows[0]) == METRIC_KEYS
    assert [row[0] for row in rows[1:]] == ["1", "2"]
    assert float(rows[2][rows[0].index("val_accuracy")]) == 0.5


def test_metrics_csv_of_a_run_without_epochs_is_just_the_header(api_client, user):
    experiment = make_run(user)

    response = api_client.get(detail_url(experiment.pk, "metrics"), {"format": "csv"})

    assert response.status_code == 200
    assert response.content.decode().splitlines() == [",".join(METRIC_COLUMNS)]


def test_metrics_in_an_unknown_format_is_400(api_client, user):
    experiment = make_run(user)

    response = api_client.get(detail_url(experiment.pk, "metrics"), {"format": "xlsx"})

    assert response.status_code == 400
    assert "format" in response.json()


def test_weights_of_a_run_without_weights_is_404_with_a_reason(api_client, user):
    experiment = make_run(user, status=Status.RUNNING)

    response = api_client.get(detail_url(experiment.pk, "weights"))

    assert response.status_code == 404
    assert "no weights yet" in response.json()["detail"]


def test_weights_whose_file_is_gone_is_404(api_client, user):
    experiment = make_run(user, status=Status.SUCCEEDED, weights_path="weights/experiment-gone.npz")

    response = api_client.get(detail_url(experiment.pk, "weights"))

    assert response.status_code == 404
    assert "missing" in response.json()["detail"]


def test_weights_download(api_client, user):
    buffer = io.BytesIO()
    np.savez(buffer, W0=np.ones((3, 2), dtype=np.float32))
    experiment = make_run(user, status=Status.SUCCEEDED)
    path = f"weights/experiment-{experiment.pk}.npz"
    storage.save_bytes(path, buffer.getvalue())
    Experiment.objects.filter(pk=experiment.pk).update(weights_path=path)

    response = api_client.get(detail_url(experiment.pk, "weights"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert f'filename="experiment-{experiment.pk}-weights.npz"' in response["Content-Disposition"]
    weights = np.load(io.BytesIO(b"".join(response.streaming_content)))
    assert weights["W0"].shape == (3, 2)
    assert api_client.get(detail_url(experiment.pk)).json()["links"]["weights"].endswith(
        f"/api/experiments/{experiment.pk}/weights/")


# --------------------------------------------------------------------------- end to end


def test_a_script_queues_a_run_that_a_real_worker_trains(celery_worker, user, quick_config):
    client = APIClient()
    token = client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-1"},
                        format="json").json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    created = client.post(LIST_URL, {"name": "e2e", "config": quick_config}, format="json")
    assert created.status_code == 201, created.content
    experiment = Experiment.objects.get(pk=created.json()["id"])
    wait_for_status(experiment, Status.SUCCEEDED)

    detail = client.get(detail_url(experiment.pk)).json()
    assert detail["status"] == "succeeded"
    assert [m["epoch"] for m in detail["metrics"]] == [1, 2, 3]
    assert detail["test_accuracy"] > 0.5
    assert detail["attempts"] == 1 and detail["worker_host"]
    assert detail["duration_seconds"] is not None

    csv_response = client.get(detail["links"]["csv"])
    assert csv_response.status_code == 200
    lines = csv_response.content.decode().splitlines()
    assert lines[0] == ",".join(METRIC_COLUMNS)
    assert len(lines) == 4

    weights_response = client.get(detail["links"]["weights"])
    assert weights_response.status_code == 200
    weights = np.load(io.BytesIO(b"".join(weights_response.streaming_content)))
    assert weights["W0"].shape == (784, 32)
    assert weights["W1"].shape == (32, 10)

    rerun = client.post(detail_url(experiment.pk, "rerun"))
    assert rerun.status_code == 201
    assert rerun.json()["parent"] == experiment.pk
    child = wait_for_status(Experiment.objects.get(pk=rerun.json()["id"]), Status.SUCCEEDED)
    assert child.config == experiment.config
    assert client.get(detail_url(experiment.pk)).json()["children"] == [child.pk]


def test_a_run_read_between_its_final_status_and_its_advice_says_its_analysis_is_pending(
        api_client, direct_delivery, user, quick_config, monkeypatch):
    """The final status is stored before the advice: a client reading in between sees
    analysis_pending instead of an empty list it cannot tell from "no advice"."""
    from experiments.services import lifecycle

    seen = []

    def read_as_a_client(experiment):  # runs first of all run_ended subscribers: the window
        seen.append(api_client.get(detail_url(experiment.pk)).json())

    monkeypatch.setattr(lifecycle, "_subscribers", [read_as_a_client, *lifecycle._subscribers])
    experiment = services.experiment_create(owner=user, config=quick_config)
    services.experiment_run(experiment_id=experiment.pk)

    during = seen[0]
    assert during["status"] == "succeeded"
    assert during["analysis_pending"] is True and during["recommendations"] == []
    after = api_client.get(detail_url(experiment.pk)).json()
    assert after["analysis_pending"] is False and after["recommendations"]
