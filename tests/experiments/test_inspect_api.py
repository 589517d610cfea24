"""Inspecting a trained run over the API: predictions, misclassified test images, first-layer filters."""

from __future__ import annotations

import io

import numpy as np
import pytest

from experiments import inference, services, storage
from experiments.models import Experiment
from training.data import CLASS_NAMES, load_fashion_mnist

pytestmark = pytest.mark.django_db

Status = Experiment.Status


def url(experiment_id: int, action: str) -> str:
    return f"/api/experiments/{experiment_id}/{action}/"


@pytest.fixture(autouse=True)
def fresh_inference_caches():
    inference.clear_caches()
    yield
    inference.clear_caches()


@pytest.fixture
def trained_run(user, quick_config):
    """A run really trained in-process (a second or so), with its weights stored."""
    experiment = services.experiment_create(owner=user, config=quick_config, name="inspect me", enqueue=False)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.SUCCEEDED and experiment.weights_path
    return experiment


@pytest.fixture
def queued_run(user):
    return services.experiment_create(owner=user, config={"epochs": 3}, name="no weights", enqueue=False)


def test_test_image(trained_run, api_client):
    response = api_client.post(url(trained_run.pk, "predict"), {"test_index": 7}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    raw = load_fashion_mnist()
    assert body["label"] == int(raw.test_labels[7])
    assert body["test_index"] == 7
    assert body["pixels"] == [int(v) for v in raw.test_images[7]]
    assert body["class_names"] == list(CLASS_NAMES)
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["predicted"] == int(np.argmax(body["probabilities"]))


def test_pixels_give_the_same_answer_as_the_test_image_they_come_from(trained_run, api_client):
    by_index = api_client.post(url(trained_run.pk, "predict"), {"test_index": 123}, format="json").json()
    pixels = by_index["pixels"]
    pixels[0] = 0.4  # floats are accepted and rounded
    by_pixels = api_client.post(url(trained_run.pk, "predict"), {"pixels": pixels}, format="json")
    assert by_pixels.status_code == 200, by_pixels.content
    body = by_pixels.json()
    assert body["label"] is None and body["test_index"] is None
    assert body["pixels"][0] == 0
    assert body["probabilities"] == pytest.approx(by_index["probabilities"], abs=1e-5)


def test_random_test_image(trained_run, api_client):
    response = api_client.post(url(trained_run.pk, "predict"), {"random": True}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert 0 <= body["test_index"] < 10000
    assert body["label"] == int(load_fashion_mnist().test_labels[body["test_index"]])
    assert len(body["pixels"]) == 784 and all(0 <= v <= 255 for v in body["pixels"])


@pytest.mark.parametrize(("payload", "field", "fragment"), [
    ({"pixels": [0] * 10}, "pixels", "exactly 784 values"),
    ({"pixels": [0] * 783 + [256]}, "pixels", "out of range at index 783 (256)"),
    ({"pixels": [0] * 783 + [-1]}, "pixels", "out of range at index 783"),
    ({"pixels": ["12"] + [0] * 783}, "pixels", "not a number at index 0 ('12')"),
    ({"pixels": [True] + [0] * 783}, "pixels", "not a number at index 0"),
    ({"pixels": "0" * 784}, "pixels", "Must be a list"),
    ({"test_index": 10000}, "test_index", "from 0 to 9999"),
    ({"test_index": -1}, "test_index", "greater than or equal to 0"),
    ({"test_index": "3"}, "test_index", "valid integer"),
    ({"random": "yes"}, "random", "true or false"),
    ({"pixels": [0] * 784, "test_index": 3}, "non_field_errors", "only one of pixels, test_index"),
    ({"test_index": 3, "random": True}, "non_field_errors", "only one of"),
    ({}, "non_field_errors", "Send one of"),
    ({"random": False}, "non_field_errors", "Send one of"),
    ({"image": [0] * 784}, "image", "Unknown field"),
])
def test_invalid_bodies_are_400_naming_the_problem(trained_run, api_client, payload, field, fragment):
    response = api_client.post(url(trained_run.pk, "predict"), payload, format="json")
    assert response.status_code == 400, response.content
    messages = response.json()[field]
    assert any(fragment in message for message in messages), messages


def test_a_body_that_is_not_an_object_is_400(trained_run, api_client):
    response = api_client.post(url(trained_run.pk, "predict"), [1, 2, 3], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_other_users_runs_are_404(trained_run, other_client):
    assert other_client.post(url(trained_run.pk, "predict"), {"random": True}, format="json").status_code == 404
    assert other_client.get(url(trained_run.pk, "misclassified")).status_code == 404
    assert other_client.get(url(trained_run.pk, "filters")).status_code == 404
    assert other_client.get(url(999999, "filters")).status_code == 404


def test_anonymous_requests_are_401(trained_run):
    from rest_framework.test import APIClient

    assert APIClient().get(url(trained_run.pk, "filters")).status_code == 401


def test_a_run_without_weights_is_409(queued_run, api_client):
    for response in (api_client.post(url(queued_run.pk, "predict"), {"random": True}, format="json"),
                     api_client.get(url(queued_run.pk, "misclassified")),
                     api_client.get(url(queued_run.pk, "filters"))):
        assert response.status_code == 409, response.content
        assert "has no weights" in response.json()["detail"]


def test_a_missing_weights_file_is_404(trained_run, api_client):
    Experiment.objects.filter(pk=trained_run.pk).update(weights_path=trained_run.weights_path + ".gone")
    response = api_client.get(url(trained_run.pk, "filters"))
    assert response.status_code == 404
    assert "missing" in response.json()["detail"]


def test_weights_that_do_not_fit_the_network_are_409(trained_run, api_client):
    buffer = io.BytesIO()
    np.savez(buffer, W0=np.zeros((784, 5), np.float32), b0=np.zeros(5, np.float32))
    path = f"weights/experiment-{trained_run.pk}.wrong.npz"
    storage.save_bytes(path, buffer.getvalue())
    Experiment.objects.filter(pk=trained_run.pk).update(weights_path=path)
    response = api_client.get(url(trained_run.pk, "filters"))
    assert response.status_code == 409
    assert "do not fit" in response.json()["detail"]


def test_misclassified_count_matches_the_test_accuracy(trained_run, api_client):
    response = api_client.get(url(trained_run.pk, "misclassified"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total"] == round((1 - trained_run.test_accuracy) * 10000)
    assert body["test_count"] == 10000
    assert len(body["items"]) == min(24, body["total"])
    wrong_per_class = sum(row[c] for c, row in enumerate(trained_run.confusion_matrix))
    assert body["total"] == 10000 - wrong_per_class
    labels = load_fashion_mnist().test_labels
    confidences = [item["confidence"] for item in body["items"]]
    assert confidences == sorted(confidences, reverse=True)
    for item in body["items"]:
        assert item["true"] == int(labels[item["index"]])
        assert item["predicted"] != item["true"]
        assert 0 < item["confidence"] <= 1
        assert len(item["pixels"]) == 784


def test_the_misclassified_list_is_stored_when_the_run_ends(trained_run):
    stored = trained_run.misclassified
    assert set(stored) >= {"indices", "true", "predicted", "confidence", "test_count"}
    assert stored["test_count"] == 10000
    assert len(stored["indices"]) == len(stored["true"]) == len(stored["predicted"]) == len(stored["confidence"])
    assert len(stored["indices"]) == round((1 - trained_run.test_accuracy) * 10000)
    computed = inference.compute_misclassified(trained_run)
    assert stored["indices"] == computed.indices.tolist()
    assert stored["confidence"] == pytest.approx(computed.confidence.tolist(), abs=1e-6)


def test_the_endpoint_only_reads_the_stored_list_and_never_runs_the_network(trained_run, api_client, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the web process ran the network")

    monkeypatch.setattr(inference, "compute_misclassified", refuse)
    monkeypatch.setattr(inference, "load_model", refuse)
    monkeypatch.setattr(inference.LoadedModel, "logits_and_proba", refuse)
    response = api_client.get(url(trained_run.pk, "misclassified") + "?limit=3&offset=2")
    assert response.status_code == 200, response.content
    body = response.json()
    stored = trained_run.misclassified
    assert body["total"] == len(stored["indices"])
    assert [item["index"] for item in body["items"]] == stored["indices"][2:5]
    assert [item["predicted"] for item in body["items"]] == stored["predicted"][2:5]
    assert body["class_names"] == list(CLASS_NAMES)


def test_storing_the_list_is_idempotent(trained_run):
    from experiments.services import inspection

    Experiment.objects.filter(pk=trained_run.pk).update(misclassified={"indices": [1], "true": [0], "predicted": [2],
                                                                       "confidence": [0.5], "test_count": 10000})
    trained_run.refresh_from_db()
    inspection.on_run_ended(trained_run)  # the reconciler may call a subscriber again
    trained_run.refresh_from_db()
    assert trained_run.misclassified["indices"] == [1]  # kept, not recomputed


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED, Status.DIVERGED])
def test_runs_without_weights_get_no_list(user, status):
    from experiments.services import inspection

    run = Experiment.objects.create(owner=user, config={}, status=status)
    inspection.on_run_ended(run)
    run.refresh_from_db()
    assert run.misclassified is None


def test_a_run_that_finished_before_the_list_was_stored_is_409_saying_so(trained_run, api_client):
    Experiment.objects.filter(pk=trained_run.pk).update(misclassified=None, post_run_pending=False)
    response = api_client.get(url(trained_run.pk, "misclassified"))
    assert response.status_code == 409
    assert "before" in response.json()["detail"] and "rerun" in response.json()["detail"].lower()


def test_a_list_still_being_computed_is_409_saying_to_try_again(trained_run, api_client):
    Experiment.objects.filter(pk=trained_run.pk).update(misclassified=None, post_run_pending=True)
    response = api_client.get(url(trained_run.pk, "misclassified"))
    assert response.status_code == 409
    assert "try again" in response.json()["detail"]


def test_runs_that_ended_before_lists_were_stored_get_one_from_the_backfill_command(trained_run, user, api_client):
    from django.core.management import call_command

    Experiment.objects.filter(pk=trained_run.pk).update(misclassified=None, post_run_pending=False)
    gone = Experiment.objects.create(owner=user, config=trained_run.config, status=Status.SUCCEEDED,
                                     weights_path=trained_run.weights_path + ".gone")
    out = io.StringIO()
    call_command("store_misclassified", stdout=out)
    assert f"stored the list of 1 run(s); no list for 1 (weights missing or unusable): [{gone.pk}]" in out.getvalue()
    assert api_client.get(url(trained_run.pk, "misclassified")).status_code == 200


def test_the_list_survives_its_weights_file(trained_run, api_client):
    Experiment.objects.filter(pk=trained_run.pk).update(weights_path=trained_run.weights_path + ".gone")
    response = api_client.get(url(trained_run.pk, "misclassified"))
    assert response.status_code == 200
    assert response.json()["total"] == len(trained_run.misclassified["indices"])


@pytest.mark.parametrize("query", ["offset=99999999999999999999999", "limit=99999999999999999999", "limit=1e3",
                                   "offset=" + "9" * 5000, "limit=%00", "offset=-0", "limit=1&limit=2"])
def test_odd_paging_queries_are_answered_without_a_server_error(trained_run, api_client, query):
    response = api_client.get(url(trained_run.pk, "misclassified") + "?" + query)
    assert response.status_code in (200, 400), response.content[:300]


def test_misclassified_limit_is_capped_and_validated(trained_run, api_client):
    body = api_client.get(url(trained_run.pk, "misclassified") + "?limit=500").json()
    assert len(body["items"]) == min(100, body["total"])
    second = api_client.get(url(trained_run.pk, "misclassified") + "?limit=2&offset=1").json()
    assert [item["index"] for item in second["items"]] == [item["index"] for item in body["items"][1:3]]
    for query in ("limit=0", "limit=abc", "offset=-1"):
        response = api_client.get(url(trained_run.pk, "misclassified") + "?" + query)
        assert response.status_code == 400, query
        assert set(response.json()) <= {"limit", "offset"}


def test_filters_are_first_layer_columns_scaled_per_unit(trained_run, api_client):
    response = api_client.get(url(trained_run.pk, "filters"))
    assert response.status_code == 200, response.content
    body = response.json()
    units = trained_run.config["hidden_layers"][0]
    assert body["units"] == units
    assert len(body["filters"]) == min(32, units)
    assert all(len(f) == 784 for f in body["filters"])
    assert all(min(f) == 0 and max(f) == 255 for f in body["filters"])
    with np.load(io.BytesIO(storage.read_bytes(trained_run.weights_path))) as stored:
        column = stored["W0"][:, 0]
    expected = np.rint((column - column.min()) / (column.max() - column.min()) * 255)
    assert body["filters"][0] == expected.astype(int).tolist()

    capped = api_client.get(url(trained_run.pk, "filters") + "?limit=1000").json()
    assert len(capped["filters"]) == min(256, units)
    assert len(api_client.get(url(trained_run.pk, "filters") + "?limit=3").json()["filters"]) == 3
    assert api_client.get(url(trained_run.pk, "filters") + "?limit=-3").status_code == 400
