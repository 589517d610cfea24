"""The endpoints that cost the server the most are throttled: predict, misclassified and filters per
user, /health per client address; all counted in the shared Redis cache, rates from the environment."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from experiments.models import Experiment
from tests.security.conftest import make_run
from tests.security.test_limits import fresh_address

pytestmark = pytest.mark.django_db


def test_the_expensive_endpoints_have_rates_from_the_environment():
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["predict"] == "300/min" and rates["inspect"] == "120/min" and rates["health"] == "60/min"
    assert isinstance(settings.TUNER_HEALTH_WORKERS_CACHE_SECONDS, float)


@pytest.mark.parametrize(("scope", "method", "action"), [
    ("predict", "post", "predict"), ("inspect", "get", "misclassified"), ("inspect", "get", "filters"),
])
def test_inspect_endpoints_are_throttled_per_user(api_client, other_client, user, monkeypatch, scope, method,
                                                  action):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, "2/min")
    run = make_run(user, status=Experiment.Status.SUCCEEDED)  # no weights: each answer is a cheap 409
    url = f"/api/experiments/{run.pk}/{action}/"
    call = getattr(api_client, method)
    for _ in range(2):
        assert call(url, {"random": True}, format="json").status_code == 409
    refused = call(url, {"random": True}, format="json")
    assert refused.status_code == 429
    assert "throttled" in refused.json()["detail"] and int(refused["Retry-After"]) > 0
    # Per user: bob is not slowed down by alice (he gets the 404 of a run that is not his).
    assert getattr(other_client, method)(url, {"random": True}, format="json").status_code == 404


def test_misclassified_and_filters_share_one_budget(api_client, user, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "inspect", "2/min")
    run = make_run(user, status=Experiment.Status.SUCCEEDED)
    assert api_client.get(f"/api/experiments/{run.pk}/misclassified/").status_code == 409
    assert api_client.get(f"/api/experiments/{run.pk}/filters/").status_code == 409
    assert api_client.get(f"/api/experiments/{run.pk}/misclassified/").status_code == 429


def test_health_is_throttled_per_client_address(monkeypatch, settings):
    settings.TUNER_HEALTH_WORKER_PING_SECONDS = 0.2
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "health", "3/min")
    client, address = APIClient(), fresh_address()
    for _ in range(3):
        assert client.get("/health", REMOTE_ADDR=address).status_code == 200
    refused = client.get("/health", REMOTE_ADDR=address)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert client.get("/health", REMOTE_ADDR=fresh_address()).status_code == 200
    # X-Forwarded-For cannot fake another address (TUNER_NUM_PROXIES=0).
    assert client.get("/health", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=fresh_address()).status_code == 429


def test_health_still_answers_when_the_throttle_cache_is_unreachable(monkeypatch, settings):
    """Reporting Redis down is /health's job: its throttle lets the probe through, never a 500."""
    settings.TUNER_HEALTH_WORKER_PING_SECONDS = 0.2
    dead = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}})
    monkeypatch.setattr(SimpleRateThrottle, "cache", dead)
    monkeypatch.setattr("experiments.health.cache", dead)
    response = APIClient().get("/health", REMOTE_ADDR=fresh_address())
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"
