"""Readiness: can this process serve requests and get runs trained?

`readiness()` never raises and never blocks for long: every probe catches its own
errors and Redis is reached with ~1 s socket timeouts and no retries, so a dead
Redis answers "unavailable" at once instead of hanging the probe.

Ready means the database and Redis answer. The worker count and queue length are
reported for operators (a server with no live worker still accepts runs; they
wait in the queue), and carry no private data.

The worker count costs a broadcast ping that waits ~1 s for answers, so it is shared
through the Redis cache by every web process: younger than
TUNER_HEALTH_WORKERS_CACHE_SECONDS it is answered as is; older, one caller pings again
(under a lock) while the others answer the last count at once (or, when there is none
yet, wait for that one ping instead of sending their own).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from experiments import broker
from tuner_site.celery import app

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 1.0
# How long to wait for workers to answer a ping; overridable (tests use less).
DEFAULT_WORKER_PING_SECONDS = 1.0
WORKERS_KEY, WORKERS_LOCK_KEY = "health:workers", "health:workers:refreshing"
WORKERS_KEPT_SECONDS = 300  # how long a stale count may stand in while one caller refreshes it


def database_ok(alias: str = "default") -> bool:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except Exception as exc:  # noqa: BLE001 - a probe reports failures, it does not raise them
        logger.warning("health: database %r unavailable: %s", alias, exc)
        return False


def redis_status() -> tuple[bool, int | None]:
    """(Redis answers, messages waiting in the Celery queue or None if unknown)."""
    try:
        client = broker.redis_client(timeout=REDIS_TIMEOUT_SECONDS, retries=False)
        pong = client.ping()
        return bool(pong), broker.queue_length(client)
    except Exception as exc:  # noqa: BLE001
        logger.warning("health: redis unavailable: %s", exc)
        return False, None


def live_worker_count(timeout: float | None = None) -> int | None:
    """Workers answering a broadcast ping within `timeout` seconds; None if the ping failed."""
    if timeout is None:
        timeout = _ping_seconds()
    try:
        replies = app.control.ping(timeout=timeout) or []
        hosts = set()
        for reply in replies:
            hosts.update(reply)
        return len(hosts)
    except Exception as exc:  # noqa: BLE001
        logger.warning("health: could not ping workers: %s", exc)
        return None


def _ping_seconds() -> float:
    return float(getattr(settings, "TUNER_HEALTH_WORKER_PING_SECONDS", DEFAULT_WORKER_PING_SECONDS))


def cached_live_worker_count() -> int | None:
    """`live_worker_count()`, pinged at most once per TUNER_HEALTH_WORKERS_CACHE_SECONDS by all
    web processes together (see the module docstring). Without the cache: a ping of its own."""
    try:
        entry = cache.get(WORKERS_KEY)
        if entry is not None and time.time() - entry["at"] < settings.TUNER_HEALTH_WORKERS_CACHE_SECONDS:
            return entry["workers"]
        refresher = cache.add(WORKERS_LOCK_KEY, 1, timeout=_ping_seconds() + 5)
    except Exception as exc:  # noqa: BLE001 - the cache is Redis; its outage is reported elsewhere
        logger.warning("health: worker count cache unavailable: %s", exc)
        return live_worker_count()
    if refresher:
        workers = live_worker_count()
        try:
            cache.set(WORKERS_KEY, {"workers": workers, "at": time.time()}, timeout=WORKERS_KEPT_SECONDS)
            cache.delete(WORKERS_LOCK_KEY)
        except Exception as exc:  # noqa: BLE001
            logger.warning("health: could not share the worker count: %s", exc)
        return workers
    if entry is not None:
        return entry["workers"]  # somebody is refreshing it: the last count meanwhile
    return _wait_for_count(deadline=time.monotonic() + _ping_seconds() + 1.0)


def _wait_for_count(*, deadline: float) -> int | None:
    """The count another caller's ping is about to store (None if it does not come in time)."""
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            entry = cache.get(WORKERS_KEY)
        except Exception:  # noqa: BLE001
            return None
        if entry is not None:
            return entry["workers"]
    return None


def forget_worker_count() -> None:
    """Drop the shared count (tests, or after starting workers)."""
    cache.delete_many([WORKERS_KEY, WORKERS_LOCK_KEY])


def readiness() -> dict[str, Any]:
    """The /health document; `status` is "ok" when the database and Redis both answer."""
    db_ok = database_ok()
    redis_ok, queue_length = redis_status()
    # The worker ping goes through the broker (Redis): only try it when Redis answers.
    workers = cached_live_worker_count() if redis_ok else None
    return {
        "status": "ok" if db_ok and redis_ok else "unavailable",
        "database": {"ok": db_ok},
        "redis": {"ok": redis_ok},
        "workers": workers,
        "queue_length": queue_length,
    }
