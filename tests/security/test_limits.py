"""Abuse limits: throttles (shared through the Redis cache), request size, page size, websocket input."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from experiments.consumers import MAX_CLIENT_MESSAGE_BYTES
from experiments.models import Experiment
from experiments.routing import websocket_urlpatterns
from tests.security.conftest import make_run

pytestmark = pytest.mark.django_db


def fresh_address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def test_throttle_rates_and_the_shared_cache_are_configured():
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["run_create"] == "60/min" and rates["auth"] == "20/min"
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    key = f"probe-{uuid.uuid4()}"
    cache.set(key, 1, 5)  # really reaches Redis (a LocMem cache would not be shared by processes)
    assert cache._cache.get_client().exists(cache.make_key(key))
    cache.delete(key)


def test_token_endpoint_is_throttled_per_address(user):
    client = APIClient()
    address = fresh_address()
    for attempt in range(20):  # other usernames each time: the throttle, not the lockout (test_auth.py)
        response = client.post("/api/auth/token/", {"username": f"nobody-{attempt}", "password": "wrong"},
                               format="json", REMOTE_ADDR=address)
        assert response.status_code == 400
    response = client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-1"},
                           format="json", REMOTE_ADDR=address)
    assert response.status_code == 429
    assert "throttled" in response.json()["detail"] and int(response["Retry-After"]) > 0
    # Another address is not affected, and X-Forwarded-For cannot fake one (TUNER_NUM_PROXIES=0).
    assert client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-1"},
                       format="json", REMOTE_ADDR=fresh_address()).status_code == 200
    assert client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-1"},
                       format="json", REMOTE_ADDR=address,
                       HTTP_X_FORWARDED_FOR=fresh_address()).status_code == 429


def test_run_creation_is_throttled_per_user_and_listing_is_not(api_client, other_client, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "run_create", "3/min")
    for _ in range(3):
        assert api_client.post("/api/experiments/", {"config": {"epochs": 1}}, format="json").status_code == 201
    refused = api_client.post("/api/experiments/", {"config": {"epochs": 1}}, format="json")
    assert refused.status_code == 429
    assert "throttled" in refused.json()["detail"] and "Retry-After" in refused
    assert Experiment.objects.count() == 3
    for _ in range(5):
        assert api_client.get("/api/experiments/").status_code == 200  # reads are not throttled
    parent = Experiment.objects.first()
    assert api_client.post(f"/api/experiments/{parent.pk}/rerun/").status_code == 429  # same budget
    # Per user: bob still may.
    assert other_client.post("/api/experiments/", {"config": {"epochs": 1}}, format="json").status_code == 201


@pytest.mark.parametrize("path", ["/api/experiments/", "/api/auth/token/"])
def test_a_2_mib_body_is_refused_without_a_server_error(api_client, path):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 1024 * 1024
    body = json.dumps({"config": {"epochs": 1}, "name": "x" * (2 * 1024 * 1024)})
    response = api_client.post(path, body, content_type="application/json", REMOTE_ADDR=fresh_address())
    assert response.status_code in (400, 413), response.status_code
    assert Experiment.objects.count() == 0


def test_page_size_is_capped_at_200(api_client, user):
    Experiment.objects.bulk_create(Experiment(owner=user, config={}, name=f"r{i}") for i in range(203))
    body = api_client.get("/api/experiments/", {"limit": 10_000}).json()
    assert body["count"] == 203 and len(body["results"]) == 200
    assert api_client.get("/api/experiments/", {"limit": "lots"}).status_code == 400
    assert api_client.get("/api/experiments/", {"offset": -1}).status_code == 400


async def _replies(path: str, user, frames: list) -> list:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    replies = []
    if path != "/ws/experiments/":
        await communicator.receive_json_from(timeout=5)  # the snapshot
    for frame in frames:
        if isinstance(frame, bytes):
            await communicator.send_to(bytes_data=frame)
        else:
            await communicator.send_to(text_data=frame)
        replies.append(await communicator.receive_json_from(timeout=5))
    await communicator.send_json_to({"type": "ping"})
    replies.append(await communicator.receive_json_from(timeout=5))  # still open and answering
    await communicator.disconnect()
    return replies


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", ["run", "user"])
def test_websocket_oversized_or_malformed_messages_get_an_error_event(user, route):
    path = f"/ws/experiments/{make_run(user).pk}/" if route == "run" else "/ws/experiments/"
    frames = ["x" * (MAX_CLIENT_MESSAGE_BYTES * 64), json.dumps({"type": "ping", "pad": "y" * MAX_CLIENT_MESSAGE_BYTES}),
              "{not json", "[]", "null", json.dumps({"type": 5}), json.dumps({"type": "x" * 3000}),
              "\u0000", b"\x00" * 10]
    replies = async_to_sync(_replies)(path, user, frames)
    assert [r["type"] for r in replies[:-1]] == ["error"] * len(frames)
    assert all(len(r["message"]) < 300 for r in replies[:-1])  # no echo of the huge input
    assert replies[-1] == {"type": "pong"}
