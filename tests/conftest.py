"""Shared fixtures: users, API clients, and a real Celery worker on the real Redis."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser("staff", password="staff-password-1")


@pytest.fixture
def api_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def other_client(other_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(other_user)
    return client


# A small, fast, real training configuration (a few hundred ms per run).
QUICK_CONFIG = {"hidden_layers": [32], "epochs": 3, "train_size": 1000, "batch_size": 64,
                "lr_schedule": "constant", "dropout": 0.0, "learning_rate": 0.003}


@pytest.fixture
def quick_config():
    return dict(QUICK_CONFIG)


@pytest.fixture
def direct_delivery(transactional_db, settings):
    """The test plays the broker itself: it calls the task body instead of enqueueing."""
    settings.TUNER_DISPATCH_RUNS = False


@pytest.fixture
def celery_worker(transactional_db, django_db_blocker):
    """A real Celery worker (solo pool, its own thread) consuming the test queue, for one test.

    Function-scoped on purpose: a worker alive between tests would train runs that other
    tests create and expect to stay queued. The test's data is committed (transactional)
    so the worker thread sees it.
    """
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    from tuner_site.celery import app

    def close_thread_connections(**_):
        # The worker thread must not keep connections: tables are flushed after the test
        # and the test database is dropped at the end of the session.
        connections.close_all()

    _purge_test_queue()
    task_postrun.connect(close_thread_connections, weak=False)
    app.conf.worker_hijack_root_logger = False
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False,
                          loglevel="WARNING", shutdown_timeout=60) as worker:
            yield worker
    finally:
        task_postrun.disconnect(close_thread_connections)


def _purge_test_queue() -> None:
    from tuner_site.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(app.conf.task_default_queue)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


def wait_for_status(experiment, statuses, timeout: float = 60.0):
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)

    def finished():
        experiment.refresh_from_db()
        return experiment.status in statuses

    wait_for(finished, timeout, message=f"experiment #{experiment.pk} to reach {sorted(statuses)}")
    return experiment


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """A new channel-layer instance per test: channels_redis binds its locks to the event loop that
    first used them, and each test (async_to_sync, consumers, the publisher thread) has its own."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
