"""Fixtures for the server tests."""

import pytest


@pytest.fixture(autouse=True)
def fresh_event_counters(settings):
    """Row ids are reused after a transactional test flushes its tables; so must seq counters be."""
    import redis

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    # Throttle counters live in the Redis cache too; user ids repeat across tests.
    cache_prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    keys = list(client.scan_iter(f"{prefix}:seq:*")) + list(client.scan_iter(f"{cache_prefix}:*throttle*"))
    if keys:
        client.delete(*keys)
    client.close()
