"""The reconciler: heals everything that can get stuck, idempotently, with several workers.

The lease (services/execution.py) makes every re-delivery safe; this makes sure one
*happens*, and that nothing waits forever:

(a) queued runs the broker does not hold (Redis restarted without persistence, or the enqueue
    failed: the queued row is the outbox) are sent;
(b) running runs whose heartbeat went stale (their worker vanished) are re-delivered;
(c) runs out of attempts end `failed` with a message (freeing their quota slot and their sweep);
(d) runs that ended with follow-up work pending (advice, artifacts, the sweep's next trials:
    the worker died or a subscriber failed) get it done;
(e) active sweeps with room for trials but none active are filled (or finished).

Celery beat runs `runs_reconcile` every TUNER_RECONCILE_INTERVAL_SECONDS (`make run` starts
beat too) and every worker runs it once at start-up (experiments/worker_hooks.py).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from experiments import broker
from experiments.models import Experiment, Sweep
from experiments.services.execution import experiment_give_up
from experiments.services.lifecycle import run_ended
from experiments.services.sweeps import sweep_fill

logger = logging.getLogger(__name__)

Status = Experiment.Status


def runs_reconcile(*, stale_after_seconds: float | None = None, queued_min_age_seconds: float = 10.0,
                   include_all_running: bool = False) -> dict[str, Any]:
    """One round of (a) to (e) of the module docstring; idempotent. Its report lists the runs
    and sweeps each step acted on.

    (a) takes `queued` runs older than `queued_min_age_seconds` (also how long (d) leaves an
        ended run's worker to do its own follow-up);
    (b) takes `running` runs whose heartbeat is older than `stale_after_seconds` (default
        TUNER_HEARTBEAT_STALE_SECONDS), or every running run with `include_all_running` (a
        fresh stack where no worker of the previous one survives: runlab).

    The message is sent with the run's own task id; the claim makes a duplicate harmless
    (at worst the newer delivery takes the lease and resumes from the checkpoint), and the
    attempts cap still applies. A Redis lock keeps concurrent reconcilers from double-sending.
    """
    stale = settings.TUNER_HEARTBEAT_STALE_SECONDS if stale_after_seconds is None else stale_after_seconds
    report: dict[str, Any] = {"locked": False, "requeued_queued": [], "requeued_stale": [], "gave_up": [],
                              "followed_up": [], "sweeps_filled": []}
    lock = broker.reconcile_lock(broker.redis_client(url=settings.CELERY_BROKER_URL, timeout=10))
    if not lock.acquire():
        report["locked"] = True  # another reconciler is at work
        return report
    try:
        now = timezone.now()
        report["gave_up"] = _give_up_exhausted()
        in_broker = broker.broker_task_ids()
        queued = (Experiment.objects.filter(
            status=Status.QUEUED, cancel_requested=False,
            created_at__lt=now - timezone.timedelta(seconds=queued_min_age_seconds))
            .order_by("created_at", "id").values_list("pk", "task_id"))
        running = Experiment.objects.filter(status=Status.RUNNING)
        if not include_all_running:
            cutoff = now - timezone.timedelta(seconds=stale)
            running = running.filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
        for experiment_id, task_id in queued:
            if task_id and task_id in in_broker:
                continue
            broker.enqueue_run(experiment_id=experiment_id, task_id=task_id)
            report["requeued_queued"].append(experiment_id)
        for experiment_id, task_id, heartbeat in (running.order_by("heartbeat_at", "id")
                                                  .values_list("pk", "task_id", "heartbeat_at")):
            # Touching the heartbeat is this reconciler's claim on the resend: a second
            # reconciler, or the next beat while every worker is busy, waits a whole stale
            # period again instead of piling up deliveries that would burn attempts.
            if not Experiment.objects.filter(pk=experiment_id, status=Status.RUNNING,
                                             heartbeat_at=heartbeat).update(heartbeat_at=now):
                continue
            broker.enqueue_run(experiment_id=experiment_id, task_id=task_id)
            report["requeued_stale"].append(experiment_id)
        report["followed_up"] = _finish_follow_up(now - timezone.timedelta(seconds=queued_min_age_seconds))
        report["sweeps_filled"] = _fill_stalled_sweeps()
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass  # expired while we worked: harmless, the work is idempotent
    if any(report[key] for key in ("requeued_queued", "requeued_stale", "gave_up", "followed_up", "sweeps_filled")):
        logger.warning("reconciler: %s", {key: value for key, value in report.items() if value})
    return report


def _give_up_exhausted() -> list[int]:
    """Active runs whose crashes used up TUNER_MAX_ATTEMPTS: no delivery may claim them again."""
    exhausted = (Experiment.objects.filter(status__in=Experiment.ACTIVE_STATUSES)
                 .filter(attempts__gte=F("handbacks") + settings.TUNER_MAX_ATTEMPTS)
                 .exclude(status=Status.RUNNING, heartbeat_at__gte=timezone.now() - timezone.timedelta(
                     seconds=settings.TUNER_HEARTBEAT_STALE_SECONDS))  # still training its last attempt
                 .values_list("pk", flat=True))
    return [experiment_id for experiment_id in exhausted if experiment_give_up(experiment_id=experiment_id)]


def _finish_follow_up(ended_before) -> list[int]:
    """Ended runs whose follow-up work is still pending (given the worker time to do it itself);
    runs that ended more than a day ago are left alone: a subscriber that keeps failing is a bug
    for the logs, not work to retry forever."""
    pending = Experiment.objects.filter(
        post_run_pending=True, status__in=Experiment.FINISHED_STATUSES, finished_at__lt=ended_before,
        finished_at__gte=timezone.now() - timezone.timedelta(days=1)).order_by("finished_at")
    return [experiment.pk for experiment in pending if run_ended(experiment)]


def _fill_stalled_sweeps() -> list[int]:
    """Active sweeps with no trial queued or running: a refill that never happened (or failed)."""
    stalled = (Sweep.objects.filter(status__in=Sweep.ACTIVE_STATUSES)
               .exclude(trials__status__in=Experiment.ACTIVE_STATUSES).distinct().values_list("pk", flat=True))
    filled = []
    for sweep_id in stalled:
        before = Experiment.objects.filter(sweep_id=sweep_id).count()
        sweep = sweep_fill(sweep_id=sweep_id)
        if sweep is not None and (Experiment.objects.filter(sweep_id=sweep_id).count() > before
                                  or sweep.status not in Sweep.ACTIVE_STATUSES):
            filled.append(sweep_id)
    return filled
