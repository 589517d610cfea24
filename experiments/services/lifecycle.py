"""The one way a run reaches a final status, and the one place that says so.

Every end of a run (trained to completion, diverged, pruned, cancelled before or while it
ran, failed, given up after its attempts) goes through `run_end`: a conditional UPDATE
(`only_if`, so two paths racing to end the same run end it once) that also sets
`post_run_pending`; the final state is published; then `run_ended` calls the subscribers
(artifacts, the misclassified list, recommendations, the sweep coordinator: registered from
ExperimentsConfig.ready(), in that order, so no end path has to remember them) and clears
`post_run_pending` once all succeeded. The reconciler re-runs what a crash or an error left
pending, so subscribers are idempotent.
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
        status=status, finished_at=now, heartbeat_at=now, post_run_pending=True, **fields)
    if not updated:
        return None
    experiment = Experiment.objects.get(pk=experiment_id)
    live.publish_finished(experiment)
    run_ended(experiment)
    return experiment


def run_ended(experiment: Experiment) -> bool:
    """Let every subscriber follow up on a run's end; True when all of them succeeded.

    A failing subscriber is logged and never changes the run's stored result or stops the
    others; `post_run_pending` stays set, and the reconciler calls this again later (so
    subscribers are idempotent). A worker killed in the middle leaves it set too.
    """
    succeeded = True
    for subscriber in _subscribers:
        try:
            subscriber(experiment)
        except Exception:  # noqa: BLE001 - follow-up work is secondary to the stored result
            succeeded = False
            logger.exception("run #%s ended: %s failed", experiment.pk, getattr(subscriber, "__qualname__", subscriber))
    if succeeded:
        Experiment.objects.filter(pk=experiment.pk).update(post_run_pending=False)
    return succeeded
