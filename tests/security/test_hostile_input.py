"""Hostile bodies: deeply nested or non-finite JSON, broken forms, odd charsets. Always a 4xx
naming the problem (never a 500), over HTTP and over the websockets (where the socket stays up)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.urls import get_resolver
from rest_framework.parsers import JSONParser
from rest_framework.test import APIClient

from experiments.consumers import MAX_CLIENT_MESSAGE_BYTES
from experiments.models import Experiment, Sweep
from tests.conftest import QUICK_CONFIG
from tests.security.conftest import make_run
from tests.security.test_limits import _replies, fresh_address
from tuner_site.json_limits import MAX_JSON_DEPTH

pytestmark = pytest.mark.django_db

DEEP = "[" * 20_000 + "]" * 20_000
DEPTH_ANSWER = {"detail": f"JSON nested deeper than {MAX_JSON_DEPTH} levels."}
JSON_ENDPOINTS = ["/api/auth/token/", "/api/experiments/", "/api/sweeps/"]


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def post(client, path: str, body: str, content_type: str = "application/json"):
    return client.post(path, body, content_type=content_type, REMOTE_ADDR=fresh_address())


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_twenty_thousand_nested_brackets_are_a_400_naming_the_depth_limit(api_client, path):
    response = post(api_client, path, DEEP)
    assert response.status_code == 400, response.content[:300]
    assert response.json() == DEPTH_ANSWER


def test_the_anonymous_token_endpoint_refuses_deep_nesting_without_a_server_error():
    response = post(APIClient(), "/api/auth/token/", '{"username": ' + DEEP + ', "password": "x"}')
    assert response.status_code == 400
    assert response.json() == DEPTH_ANSWER


def test_deep_nesting_inside_a_run_config_is_refused_and_nothing_is_stored(api_client, user):
    existing = make_run(user)
    runs = Experiment.objects.count()
    body = '{"name": "deep", "config": {"hidden_layers": ' + nested(MAX_JSON_DEPTH + 1) + "}}"
    response = post(api_client, "/api/experiments/", body)
    assert response.status_code == 400 and response.json() == DEPTH_ANSWER
    assert Experiment.objects.count() == runs and Experiment.objects.filter(pk=existing.pk).exists()


def test_exactly_the_depth_limit_parses_and_is_judged_by_the_view(api_client):
    # 32 levels in all: the object, its "config" object, then 30 arrays.
    body = '{"config": {"hidden_layers": ' + nested(MAX_JSON_DEPTH - 2) + "}}"
    response = post(api_client, "/api/experiments/", body)
    assert response.status_code == 400
    assert "config" in response.json()  # a field error of the config, not the depth limit


def test_brackets_inside_strings_do_not_count_as_nesting(api_client):
    name = "[{" * 60 + '\\"[' * 10
    response = post(api_client, "/api/experiments/", '{"name": "' + name + '", "config": {"epochs": 1}}')
    assert response.status_code == 201, response.content[:300]
    assert Experiment.objects.get(pk=response.json()["id"]).name == name.replace('\\"', '"')


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize(("literal", "named"), [
    ("1e400", "1e400"), ("-1e400", "-1e400"), ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
])
def test_non_finite_numbers_are_a_400_naming_the_number(api_client, path, literal, named):
    body = '{"name": "x", "config": {"learning_rate": ' + literal + '}, "username": "u", "password": "p"}'
    response = post(api_client, path, body)
    assert response.status_code == 400, response.content[:300]
    detail = response.json()["detail"]
    assert named in detail and "finite" in detail, detail


def test_an_integer_too_large_for_a_float_is_a_400(api_client):
    runs = Experiment.objects.count()
    response = post(api_client, "/api/experiments/", '{"config": {"learning_rate": 1' + "0" * 400 + "}}")
    assert response.status_code == 400
    assert "too large" in response.json()["detail"]
    assert Experiment.objects.count() == runs


@pytest.fixture(scope="module")
def trained_run(django_db_setup, django_db_blocker):
    """One run really trained in-process, with weights (kept for the module, removed after it)."""
    from django.contrib.auth import get_user_model

    from experiments import services

    with django_db_blocker.unblock():
        owner = get_user_model().objects.create_user("hostile-owner", password="owner-password-1")
        run = services.experiment_create(owner=owner, config=QUICK_CONFIG, name="hostile", enqueue=False)
        services.experiment_run(experiment_id=run.pk)
        run.refresh_from_db()
        assert run.weights_path
        yield run
        owner.delete()


@pytest.mark.parametrize("value", ["1" + "0" * 400, "-1" + "0" * 400, "1e400", "-1e400", "NaN", "1" + "0" * 5000])
def test_a_pixel_of_ten_to_the_four_hundred_is_a_400_not_a_500(trained_run, value):
    client = APIClient()
    client.force_authenticate(trained_run.owner)
    body = '{"pixels": [' + value + ", " + ", ".join(["0"] * 783) + "]}"
    response = post(client, f"/api/experiments/{trained_run.pk}/predict/", body)
    assert response.status_code == 400, response.content[:300]


def test_pixels_as_huge_integers_inside_the_json_limit_are_400_naming_the_index(trained_run):
    client = APIClient()
    client.force_authenticate(trained_run.owner)
    pixels = [0] * 783 + [10**300]
    response = post(client, f"/api/experiments/{trained_run.pk}/predict/", json.dumps({"pixels": pixels}))
    assert response.status_code == 400
    assert "out of range at index 783" in response.json()["pixels"][0]


@pytest.mark.parametrize(("body", "content_type"), [
    ("username=a&password=b&" + "x=1&" * 5000, "application/x-www-form-urlencoded"),
    ("username=%ff%fe&password=%00", "application/x-www-form-urlencoded"),
    ("username=a", "application/x-www-form-urlencoded; charset=no-such-charset"),
    ('{"username": "a", "password": "b"}', "application/json; charset=no-such-charset"),
    ('{"username": "a", "password": "b"}', "application/json; charset=utf-32"),
    ("\udcff", "application/json"),
    ("--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\na", "multipart/form-data; boundary=x"),
    ("--x--", "multipart/form-data"),
    ("garbage", "multipart/form-data; boundary="),
    ("garbage", "multipart/form-data; boundary=" + "b" * 5000),
    ("<xml/>", "application/xml"),
    ("{}", "application/json; " + "a=b; " * 2000),
    ("", "application/json"),
    ("\x00" * 100, "application/json"),
    ('{"username": "\\ud800", "password": "x"}', "application/json"),
])
def test_malformed_bodies_to_the_token_endpoint_are_4xx(body, content_type):
    response = APIClient().generic("POST", "/api/auth/token/", body.encode("utf-8", "surrogatepass"),
                                   content_type=content_type, REMOTE_ADDR=fresh_address())
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])


@pytest.mark.parametrize("path", ["/api/experiments/", "/api/sweeps/"])
@pytest.mark.parametrize("body", [
    '{"config": ' + json.dumps({"hidden_layers": [1] * 100_000}) + "}",
    '{"config": {"hidden_layers": [128], "epochs": 1' + "0" * 4400 + "}}",
    '{"config": "' + "x" * 100_000 + '"}',
    '{"config": {"' + "k" * 100_000 + '": 1}}',
    '{"config": {"epochs": 2}, "config": {"epochs": 3}, "space": {"learning_rate": {"values": [' + "0.1," * 20_000 + "0.1]}}}",
    '{"name": "\\u0000", "config": {}, "space": {"learning_rate": {"low": 1e-400, "high": 1e308}}}',
])
def test_huge_or_repeated_json_values_are_4xx_and_nothing_stored_is_lost(api_client, user, path, body):
    existing = make_run(user, status=Experiment.Status.SUCCEEDED)
    runs, sweeps = Experiment.objects.count(), Sweep.objects.count()
    response = post(api_client, path, body)
    assert 400 <= response.status_code < 500 or response.status_code == 201, response.content[:300]
    assert Experiment.objects.filter(pk=existing.pk, status=Experiment.Status.SUCCEEDED).exists()
    if response.status_code != 201:
        assert (Experiment.objects.count(), Sweep.objects.count()) == (runs, sweeps)


def test_every_api_view_parses_json_with_the_depth_limit():
    """A view that sets parser_classes itself must not fall back to DRF's unlimited JSONParser."""
    unlimited = []
    for pattern in _all_patterns(get_resolver().url_patterns):
        view = getattr(pattern.callback, "cls", None)
        for parser in getattr(view, "parser_classes", ()):
            if parser is JSONParser:
                unlimited.append(f"{view.__module__}.{view.__name__}")
    assert unlimited == []


def _all_patterns(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _all_patterns(pattern.url_patterns)
        else:
            yield pattern


# --------------------------------------------------------------------------- websockets


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", ["run", "user"])
def test_websocket_deep_nesting_and_non_finite_numbers_get_an_error_event_and_the_socket_stays_up(user, route):
    path = f"/ws/experiments/{make_run(user).pk}/" if route == "run" else "/ws/experiments/"
    depth = (MAX_CLIENT_MESSAGE_BYTES - 10) // 2  # the deepest that fits the size limit: far past 1000
    frames = [nested(depth), '{"type": "ping", "x": ' + nested(depth - 20) + "}",
              '{"type": "ping", "x": 1e400}', '{"type": "ping", "x": NaN}', '{"type": "ping", "x": -Infinity}',
              '{"type": "ping", "x": 1' + "0" * 400 + "}"]
    replies = async_to_sync(_replies)(path, user, frames)
    assert [r["type"] for r in replies] == ["error"] * len(frames) + ["pong"]
    assert replies[0]["message"] == DEPTH_ANSWER["detail"]
    assert replies[1]["message"] == DEPTH_ANSWER["detail"]
    assert "1e400" in replies[2]["message"] and "finite" in replies[2]["message"]
    assert "NaN" in replies[3]["message"]
    assert "-Infinity" in replies[4]["message"]
    assert "too large" in replies[5]["message"]
