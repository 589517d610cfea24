"""Publishing run events to the channel layer (best effort).

Every event is a JSON object with a `type` and a per-run sequence number `seq`
(a Redis counter), sent to the run's group and, for status changes, to the
owner's group. The database is saved first; a lost event costs a client a resync
from the REST API, never data. Message schema: see README "Live events".
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

_redis_clients: dict[str, redis.Redis] = {}


def run_group(experiment_id: int) -> str:
    return f"experiment_{experiment_id}"


def user_group(user_id: int) -> str:
    return f"user_{user_id}_experiments"


def _redis() -> redis.Redis:
    url = settings.REDIS_URL
    client = _redis_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _redis_clients[url] = client
    return client


def next_seq(experiment_id: int) -> int:
    key = f"{settings.CHANNEL_LAYERS['default']['CONFIG'].get('prefix', 'tuner')}:seq:{experiment_id}"
    return int(_redis().incr(key))


def current_seq(experiment_id: int) -> int:
    """The run's last published seq (0 if none, or if Redis cannot be read).

    0 is the safe fallback: the client then keeps every event it receives.
    """
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "tuner")
    try:
        value = _redis().get(f"{prefix}:seq:{experiment_id}")
    except Exception:  # noqa: BLE001 - the snapshot is still right, only less precise
        logger.warning("could not read the seq of experiment %s", experiment_id, exc_info=True)
        return 0
    return int(value or 0)


def publish(experiment_id: int, owner_id: int, event: dict[str, Any], *, to_user: bool = False) -> dict | None:
    """Send `event` (with `type`) to the run's subscribers; returns the sent event or None."""
    try:
        event = {**event, "experiment": experiment_id, "seq": next_seq(experiment_id)}
        layer = get_channel_layer()
        message = {"type": "run.event", "event": event}
        async_to_sync(layer.group_send)(run_group(experiment_id), message)
        if to_user:
            async_to_sync(layer.group_send)(user_group(owner_id), message)
        return event
    except Exception:  # noqa: BLE001 - events are best effort; the database has the truth
        logger.warning("could not publish %s event for experiment %s", event.get("type"),
                       experiment_id, exc_info=True)
        return None
