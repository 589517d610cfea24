"""Worker heartbeats (the lab status page's "workers online"): written by each worker's main process.

`worker_heartbeat` upserts the worker's row (experiments.models.WorkerHeartbeat) at start-up and
then every TUNER_WORKER_HEARTBEAT_SECONDS; `worker_gone` deletes it on a clean shutdown. A worker
that is killed leaves its row behind: experiments/selectors_lab.py shows it offline once its
`last_seen` is older than WORKER_OFFLINE_INTERVALS intervals, and the next heartbeat of any worker
deletes rows unseen for FORGET_AFTER. Staff watching /lab/ are told when a worker appears or goes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from experiments import lab_events
from experiments.models import WorkerHeartbeat

FORGET_AFTER = timedelta(days=1)


def worker_heartbeat(*, nodename: str, hostname: str, pid: int, pids: list[int], concurrency: int,
                     started_at: datetime) -> WorkerHeartbeat:
    """Record that the worker `nodename` is alive now (its processes and concurrency as given)."""
    now = timezone.now()
    row, created = WorkerHeartbeat.objects.update_or_create(
        nodename=nodename[:255],
        defaults={"hostname": hostname[:255], "pid": pid, "pids": sorted(set(pids)), "concurrency": concurrency,
                  "last_seen": now},
        create_defaults={"hostname": hostname[:255], "pid": pid, "pids": sorted(set(pids)),
                         "concurrency": concurrency, "started_at": started_at, "last_seen": now})
    WorkerHeartbeat.objects.filter(last_seen__lt=now - FORGET_AFTER).delete()
    if created:
        lab_events.publish_lab_changed(reason="worker_online")
    return row


def worker_gone(*, nodename: str) -> None:
    """The worker stopped cleanly: forget it."""
    deleted, _ = WorkerHeartbeat.objects.filter(nodename=nodename[:255]).delete()
    if deleted:
        lab_events.publish_lab_changed(reason="worker_offline")
