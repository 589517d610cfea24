"""Readiness: can this process serve requests and get runs trained?

`readiness()` never raises and never blocks for long: every probe catches its own
errors and Redis is reached with ~1 s socket timeouts and no retries, so a dead
Redis answers "unavailable" at once instead of hanging the probe.

Ready means the database and Redis answer. The worker count and queue length are
reported for operators (a server with no live worker still accepts runs; they
wait in the queue), and carry no private data.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connections

from experiments import broker
from tuner_site.celery import app

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 1.0
# How long to wait for workers to answer a ping; overridable (tests use less).
DEFAULT_WORKER_PING_SECONDS = 1.0


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
        timeout = float(getattr(settings, "TUNER_HEALTH_WORKER_PING_SECONDS", DEFAULT_WORKER_PING_SECONDS))
    try:
        replies = app.control.ping(timeout=timeout) or []
        hosts = set()
        for reply in replies:
            hosts.update(reply)
        return len(hosts)
    except Exception as exc:  # noqa: BLE001
        logger.warning("health: could not ping workers: %s", exc)
        return None


def readiness() -> dict[str, Any]:
    """The /health document; `status` is "ok" when the database and Redis both answer."""
    db_ok = database_ok()
    redis_ok, queue_length = redis_status()
    # The worker ping goes through the broker (Redis): only try it when Redis answers.
    workers = live_worker_count() if redis_ok else None
    return {
        "status": "ok" if db_ok and redis_ok else "unavailable",
        "database": {"ok": db_ok},
        "redis": {"ok": redis_ok},
        "workers": workers,
        "queue_length": queue_length,
    }
