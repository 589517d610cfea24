"""Everything that talks to the broker (Redis) directly: the one client factory, kombu's queue
keys, the task ids it holds, and sending a run by task name.

Sending by name (`app.send_task`) is what lets services enqueue work without importing
`experiments.tasks`, which imports the services: data flows one way.
"""

from __future__ import annotations

import json
import logging

import redis
from django.conf import settings
from kombu.transport.redis import PRIORITY_STEPS, Channel
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

RUN_TASK = "experiments.run_experiment"
RECONCILE_TASK = "experiments.reconcile_runs"

_clients: dict[tuple[str, float, bool], redis.Redis] = {}


def redis_client(*, url: str | None = None, timeout: float = 2.0, retries: bool = True) -> redis.Redis:
    """A pooled client for `url` (default REDIS_URL), cached per process and per (url, timeout).

    `retries=False` is for probes (/health): redis-py retries a failed command by default,
    which turns one unreachable Redis into seconds of waiting.
    """
    url = url or settings.REDIS_URL
    key = (url, timeout, retries)
    client = _clients.get(key)
    if client is None:
        options = {} if retries else {"retry": Retry(NoBackoff(), 0)}
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, **options)
        _clients[key] = client
    return client


def queue_keys(queue: str | None = None) -> list[str]:
    """kombu's Redis lists for `queue`: "<queue>" for priority 0, "<queue>\\x06\\x16<n>" for the others."""
    queue = queue or settings.TUNER_QUEUE
    steps = (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get("priority_steps", PRIORITY_STEPS)
    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in steps]


def queue_length(client: redis.Redis, queue: str | None = None) -> int:
    pipe = client.pipeline(transaction=False)
    for key in queue_keys(queue):
        pipe.llen(key)
    return int(sum(pipe.execute()))


def _unacked_key() -> str:
    return (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get("unacked_key", "unacked")


def broker_task_ids(*, queue: str | None = None) -> set[str]:
    """Task ids of the messages the broker holds: waiting in `queue` (every priority list) or
    delivered but unacknowledged (kombu's `unacked` hash)."""
    client = redis_client(url=settings.CELERY_BROKER_URL, timeout=10)
    raw: list[bytes] = []
    for key in queue_keys(queue):
        raw.extend(client.lrange(key, 0, -1))
    for value in client.hvals(_unacked_key()):
        try:
            payload = json.loads(value)
        except ValueError:
            continue
        if isinstance(payload, list) and payload:
            raw.append(json.dumps(payload[0]).encode())
    ids: set[str] = set()
    for message in raw:
        try:
            headers = json.loads(message).get("headers") or {}
        except (ValueError, AttributeError):
            continue
        if headers.get("id"):
            ids.add(headers["id"])
    return ids


def enqueue_run(*, experiment_id: int, task_id: str | None, handed_back_lease: int | None = None,
                countdown: float | None = None) -> bool:
    """Send the training task for one run, under the run's own task id (so the reconciler can
    tell whether the broker holds it). False when the broker could not be reached: the queued
    row is the outbox, and the reconciler sends what the broker lacks. Nothing is sent when
    TUNER_DISPATCH_RUNS is off: then whoever created the run executes it (tests that play the
    broker)."""
    if not settings.TUNER_DISPATCH_RUNS:
        return False
    from tuner_site.celery import app

    kwargs = {} if handed_back_lease is None else {"handed_back_lease": handed_back_lease}
    try:
        app.send_task(RUN_TASK, args=[experiment_id], kwargs=kwargs, task_id=task_id or None,
                      queue=settings.TUNER_QUEUE, countdown=countdown,
                      retry=True, retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5})
    except Exception:  # noqa: BLE001 - kombu/redis raise many types; the row stays queued either way
        logger.warning("could not send run #%s to the broker; the reconciler will send it", experiment_id,
                       exc_info=True)
        return False
    return True


def reconcile_lock(client: redis.Redis, *, timeout: float | None = None):
    """The lock that keeps concurrent reconcilers (beat, workers) from double-sending. It expires
    after one reconcile interval (at least 10 s): a reconciler killed while holding it costs the
    others one round at most (a round takes well under a second unless it redoes follow-up work,
    and what it does is idempotent anyway)."""
    if timeout is None:
        timeout = max(10.0, settings.TUNER_RECONCILE_INTERVAL_SECONDS)
    return client.lock(f"{settings.TUNER_QUEUE}:reconcile-lock", timeout=timeout, blocking=False)
