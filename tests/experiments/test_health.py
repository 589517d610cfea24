"""GET /health: readiness for load balancers and operators, no login, never a 500."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from django.conf import settings
from django.db import OperationalError
from django.test import override_settings
from rest_framework.test import APIClient

from experiments import broker, health

pytestmark = pytest.mark.django_db

# Waiting the production 1 s for worker pings in every test would slow the suite down.
FAST_PING = override_settings(TUNER_HEALTH_WORKER_PING_SECONDS=0.2)


@FAST_PING
def test_ready_when_database_and_redis_answer():
    started = time.monotonic()
    response = APIClient().get("/health")  # anonymous

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "database", "redis", "workers", "queue_length"}
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True}
    assert body["redis"] == {"ok": True}
    assert isinstance(body["workers"], int)
    assert isinstance(body["queue_length"], int)
    assert response["Cache-Control"] == "no-store"
    assert time.monotonic() - started < 3


@FAST_PING
def test_queue_length_counts_messages_waiting_in_the_celery_queue():
    queue = f"tuner-health-test-{uuid.uuid4().hex}"  # not the queue a test worker consumes
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.rpush(queue, "m1", "m2")
        client.rpush(broker.queue_keys(queue)[1], "high-priority")
        with override_settings(TUNER_QUEUE=queue):
            body = APIClient().get("/health").json()
    finally:
        client.delete(*broker.queue_keys(queue))

    assert body["queue_length"] == 3


@FAST_PING
def test_unavailable_quickly_when_redis_is_down():
    started = time.monotonic()
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = APIClient().get("/health")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["redis"] == {"ok": False}
    assert body["database"] == {"ok": True}
    assert body["workers"] is None
    assert body["queue_length"] is None
    assert elapsed < 3


class _BrokenConnection:
    def cursor(self):
        raise OperationalError("connection refused")


@FAST_PING
def test_unavailable_when_the_database_is_down(monkeypatch):
    monkeypatch.setattr(health, "connections", {"default": _BrokenConnection()})

    response = APIClient().get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"] == {"ok": False}
    assert response.json()["redis"] == {"ok": True}


@FAST_PING
def test_an_unexpected_failure_of_the_worker_ping_is_reported_not_raised(monkeypatch):
    from tuner_site.celery import app

    def explode(**_):
        raise RuntimeError("broker hiccup")

    monkeypatch.setattr(app.control, "ping", explode)

    response = APIClient().get("/health")

    assert response.status_code == 200
    assert response.json()["workers"] is None


def test_counts_a_live_worker(celery_worker):
    body = APIClient().get("/health").json()

    assert body["status"] == "ok"
    assert body["workers"] >= 1


# --------------------------------------------------------------------------- the shared worker count


@pytest.fixture(autouse=True)
def no_cached_worker_count(request):
    """The worker count is shared through the Redis cache for a few seconds: no test sees another's."""
    health.forget_worker_count()
    request.addfinalizer(health.forget_worker_count)


@pytest.fixture
def counted_pings(monkeypatch):
    """app.control.ping replaced by one that takes 0.3 s, finds 2 workers and counts its calls."""
    from tuner_site.celery import app

    calls = []

    def ping(timeout):
        calls.append(timeout)
        time.sleep(0.3)
        return [{"w1@host": {"ok": "pong"}}, {"w2@host": {"ok": "pong"}}]

    monkeypatch.setattr(app.control, "ping", ping)
    return calls


@FAST_PING
def test_repeated_calls_share_one_worker_ping_for_a_few_seconds(counted_pings, settings):
    settings.TUNER_HEALTH_WORKERS_CACHE_SECONDS = 60
    first = APIClient().get("/health").json()
    again = [APIClient().get("/health").json() for _ in range(5)]
    assert first["workers"] == 2 and all(body["workers"] == 2 for body in again)
    assert len(counted_pings) == 1  # none of the later calls pinged (or waited for a ping)


@FAST_PING
def test_the_worker_count_is_pinged_again_once_it_is_older_than_the_cache_period(counted_pings, settings):
    settings.TUNER_HEALTH_WORKERS_CACHE_SECONDS = 0.5
    APIClient().get("/health")
    time.sleep(0.6)
    assert APIClient().get("/health").json()["workers"] == 2
    assert len(counted_pings) == 2


@FAST_PING
@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_do_not_each_wait_on_a_broadcast_ping(counted_pings, settings):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    settings.TUNER_HEALTH_WORKERS_CACHE_SECONDS = 60

    def probe(_):
        try:
            return APIClient().get("/health").json()["workers"]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(probe, range(8)))
    assert answers == [2] * 8
    assert len(counted_pings) == 1


@FAST_PING
def test_a_stale_worker_count_is_answered_at_once_while_one_caller_refreshes_it(counted_pings, settings,
                                                                               monkeypatch):
    import threading

    from tuner_site.celery import app

    settings.TUNER_HEALTH_WORKERS_CACHE_SECONDS = 0.2
    assert health.cached_live_worker_count() == 2
    time.sleep(0.3)  # stale now
    pinging, release = threading.Event(), threading.Event()

    def slow_ping(timeout):
        counted_pings.append(timeout)
        pinging.set()
        release.wait(10)
        return [{"w1@host": {"ok": "pong"}}]

    monkeypatch.setattr(app.control, "ping", slow_ping)
    refresher = threading.Thread(target=health.cached_live_worker_count)
    refresher.start()
    assert pinging.wait(5)  # the refresher holds the refresh lock, blocked in its ping
    assert health.cached_live_worker_count() == 2  # the last count, without waiting for that ping
    release.set()
    refresher.join()
    assert len(counted_pings) == 2
    assert health.cached_live_worker_count() == 1  # the refreshed count
