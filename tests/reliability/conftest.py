"""Fixtures of the fault-injection tests: worker subprocesses and a private Redis."""

from __future__ import annotations

import pytest

from tests.conftest import _purge_test_queue
from tests.reliability import BATCH_DELAY, PrivateRedis, Worker


@pytest.fixture
def workers():
    started: list[Worker] = []

    def start(**kwargs) -> Worker:
        worker = Worker(batch_delay=BATCH_DELAY, **kwargs)
        started.append(worker)
        return worker

    _purge_test_queue()
    yield start
    for worker in started:
        worker.stop()
    from django.db import connections

    connections.close_all()


@pytest.fixture
def private_redis(settings):
    """Point this process's broker (and the worker subprocesses) at a redis-server of our own."""
    from tuner_site.celery import app

    server = PrivateRedis().start()
    saved = app.conf.broker_url
    settings.CELERY_BROKER_URL = settings.REDIS_URL = server.url

    def use(url):
        # Fresh connection and producer pools for the new URL (the old ones are left to the GC:
        # closing them breaks producers that kombu's global pool group still hands out).
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    use(server.url)
    try:
        yield server
    finally:
        use(saved)
        server.close()
