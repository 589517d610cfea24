"""Fixtures for the server tests."""

import pytest


@pytest.fixture(autouse=True)
def fresh_event_counters(settings):
    """Row ids are reused after a transactional test flushes its tables; so must seq counters be."""
    import redis

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:seq:*"))
    if keys:
        client.delete(*keys)
    client.close()
