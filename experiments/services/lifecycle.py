"""The one way a run reaches a final status, and the one place that says so.

Every end of a run (trained to completion, diverged, pruned, cancelled before or while it
ran, failed, given up after its attempts) goes through `run_end`: a conditional UPDATE
(`only_if`, so two paths racing to end the same run end it once), then `run_ended`, which
publishes the final state and calls the subscribers: the recommendations and the sweep
coordinator. They are registered from ExperimentsConfig.ready(), in that order, so no end
path has to remember them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from experiments import live
from experiments.models import Experiment

logger = logging.getLogger(__name__)

RunEndedSubscriber = Callable[[Experiment], None]
_subscribers: list[RunEndedSubscriber] = []


def subscribe_run_ended(subscriber: RunEndedSubscriber) -> None:
    """Call `subscriber(experiment)` after every run that reaches a final status (once per subscriber)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def run_end(*, experiment_id: int, status: str, only_if: dict[str, Any], **fields: Any) -> Experiment | None:
    """Set a final `status` (and `fields`) if the run still matches `only_if`; then `run_ended`.

    None when the condition no longer held: somebody else ended (or took over) the run first.
    """
    now = timezone.now()
    updated = Experiment.objects.filter(pk=experiment_id, **only_if).update(
        status=status, finished_at=now, heartbeat_at=now, **fields)
    if not updated:
        return None
    experiment = Experiment.objects.get(pk=experiment_id)
    run_ended(experiment)
    return experiment


def run_ended(experiment: Experiment) -> None:
    """Announce the final state, then let every subscriber follow up. A failing subscriber is
    logged and never changes the run's stored result or stops the others."""
    live.publish_finished(experiment)
    for subscriber in _subscribers:
        try:
            subscriber(experiment)
        except Exception:  # noqa: BLE001 - follow-up work is secondary to the stored result
            logger.exception("run #%s ended: %s failed", experiment.pk, getattr(subscriber, "__qualname__", subscriber))
