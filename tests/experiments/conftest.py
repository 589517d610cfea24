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


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """A new channel-layer instance per test: channels_redis binds its locks to the event loop that
    first used them, and each test (async_to_sync, consumers, the publisher thread) has its own."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
