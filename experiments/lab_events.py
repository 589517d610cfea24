"""Pushes to the staff-only "lab" channel-layer group (ws/lab/, experiments/lab_consumers.py).

The message is only a nudge: `{"type": "lab_changed", "reason", ...}` with the run's id and new
status when a run changed status; the lab page then re-reads GET /api/lab/status/ (which it also
does every few seconds, so a lost nudge costs only latency). Best effort, never raises.

Status changes are a few per run, so the plain `async_to_sync` send (~2 ms, its own event loop)
is cheap enough; the per-epoch events of experiments/events.py use a long-lived loop instead.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

LAB_GROUP = "lab"


def publish_lab_changed(*, reason: str, **fields: Any) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(
            LAB_GROUP, {"type": "lab.event", "event": {"type": "lab_changed", "reason": reason, **fields}})
    except Exception:  # noqa: BLE001 - the page re-reads the API periodically anyway
        logger.warning("could not publish a lab event (%s)", reason, exc_info=True)


def publish_run_status(experiment) -> None:
    """A run changed status (called from experiments.live.publish_status)."""
    publish_lab_changed(reason="run_status", experiment=experiment.pk, status=experiment.status)
