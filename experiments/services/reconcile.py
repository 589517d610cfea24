"""The reconciler: re-send what the broker lost, re-deliver runs whose worker vanished.

The lease (services/execution.py) makes every re-delivery safe; this makes sure one
*happens*. Celery beat runs `runs_reconcile` every TUNER_RECONCILE_INTERVAL_SECONDS and every
worker runs it once at start-up (experiments/worker_hooks.py).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from experiments import broker
from experiments.models import Experiment

logger = logging.getLogger(__name__)

Status = Experiment.Status


def runs_reconcile(*, stale_after_seconds: float | None = None, queued_min_age_seconds: float = 10.0,
                   include_all_running: bool = False) -> dict[str, Any]:
    """Re-enqueue runs the broker lost and runs whose worker vanished. Idempotent.

    (a) `queued` runs older than `queued_min_age_seconds` whose task id is in neither the queue
        nor kombu's unacked hash (Redis lost its data, or the enqueue never happened);
    (b) `running` runs whose heartbeat is older than `stale_after_seconds` (default
        TUNER_HEARTBEAT_STALE_SECONDS), or every running run with `include_all_running` (a
        fresh stack where no worker of the previous one survives: runlab).

    The message is sent with the run's own task id; the claim makes a duplicate harmless
    (at worst the newer delivery takes the lease and resumes from the checkpoint), and the
    attempts cap still applies. A Redis lock keeps concurrent reconcilers from double-sending.
    """
    stale = settings.TUNER_HEARTBEAT_STALE_SECONDS if stale_after_seconds is None else stale_after_seconds
    report: dict[str, Any] = {"locked": False, "requeued_queued": [], "requeued_stale": []}
    lock = broker.reconcile_lock(broker.redis_client(url=settings.CELERY_BROKER_URL, timeout=10))
    if not lock.acquire():
        report["locked"] = True  # another reconciler is at work
        return report
    try:
        now = timezone.now()
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
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass  # expired while we worked: harmless, the work is idempotent
    if report["requeued_queued"] or report["requeued_stale"]:
        logger.warning("reconciler re-queued runs: lost by the broker %s, stale heartbeat %s",
                       report["requeued_queued"], report["requeued_stale"])
    return report
