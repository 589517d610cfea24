"""The lab as a whole, for staff (GET /api/lab/status/, the /lab/ page): one read, `lab_status()`.

- workers: the WorkerHeartbeat rows (experiments/services/workers.py), each online while its
  `last_seen` is younger than WORKER_OFFLINE_INTERVALS x TUNER_WORKER_HEARTBEAT_SECONDS, with the
  runs it is training now: running Experiments whose `worker_host` ("host:pid", written by the
  process that claimed the run) names one of the worker's processes. Running runs that match no
  heartbeat (a worker of an older release, an in-thread test worker) are listed apart;
- health: the /health probes (experiments/health.py): Redis, the broker's queue length and the
  number of workers answering a broadcast ping (shared for a few seconds by all web processes);
- runs per state (every status, zeros included), recent failures (failed or diverged, newest
  first, with the reason stored on the run) and storage per user (the sizes recorded on the runs,
  against TUNER_MAX_STORAGE_BYTES_PER_USER).

A read: it writes nothing (forgetting long-dead workers is the heartbeat service's job).
Above health in the layers (it reads its probes), below the entry points.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils import timezone

from experiments import health, selectors
from experiments.live import timestamp
from experiments.models import Experiment, WorkerHeartbeat

WORKER_OFFLINE_INTERVALS = 3  # heartbeats missed before a worker counts as offline
FAILURE_STATUSES = (Experiment.Status.FAILED, Experiment.Status.DIVERGED)
DEFAULT_FAILURES, MAX_FAILURES = 20, 100
DEFAULT_FAILURE_HOURS, MAX_FAILURE_HOURS = 24, 24 * 30
STORAGE_USERS = 50  # the users storing most


def offline_after_seconds() -> float:
    return WORKER_OFFLINE_INTERVALS * settings.TUNER_WORKER_HEARTBEAT_SECONDS


def _run_row(run: Experiment) -> dict[str, Any]:
    epochs = (run.config or {}).get("epochs")
    progress = None
    if isinstance(epochs, int) and epochs > 0:
        progress = round(min(1.0, run.epochs_done / epochs), 4)
    return {"id": run.pk, "name": run.name, "owner": run.owner.username, "status": run.status,
            "epochs_done": run.epochs_done, "epochs": epochs, "progress": progress,
            "best_val_accuracy": run.best_val_accuracy, "sweep": run.sweep_id, "worker_host": run.worker_host,
            "started_at": timestamp(run.started_at), "heartbeat_at": timestamp(run.heartbeat_at),
            "attempts": run.attempts}


def _running_runs() -> list[Experiment]:
    return list(Experiment.objects.filter(status=Experiment.Status.RUNNING).select_related("owner")
                .only("id", "name", "owner__username", "status", "config", "epochs_done", "best_val_accuracy",
                      "sweep_id", "worker_host", "started_at", "heartbeat_at", "attempts")
                .order_by("started_at", "id"))


def workers_status(*, now) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(workers with their current runs, running runs that match no worker)."""
    offline_after = timedelta(seconds=offline_after_seconds())
    workers, by_process = [], {}
    for row in WorkerHeartbeat.objects.order_by("hostname", "nodename"):
        age = (now - row.last_seen).total_seconds()
        entry = {"nodename": row.nodename, "hostname": row.hostname, "pid": row.pid, "pids": row.pids,
                 "concurrency": row.concurrency, "started_at": timestamp(row.started_at),
                 "last_seen": timestamp(row.last_seen), "seconds_since_seen": round(max(age, 0.0), 1),
                 "online": now - row.last_seen <= offline_after, "current_runs": []}
        workers.append(entry)
        for pid in {row.pid, *row.pids}:
            by_process[f"{row.hostname}:{pid}"] = entry
    unattributed = []
    for run in _running_runs():
        owner = by_process.get(run.worker_host)
        (owner["current_runs"] if owner is not None else unattributed).append(_run_row(run))
    workers.sort(key=lambda worker: (not worker["online"], worker["hostname"], worker["nodename"]))
    return workers, unattributed


def runs_by_state() -> dict[str, int]:
    counts = dict.fromkeys(Experiment.Status.values, 0)
    for row in Experiment.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def recent_failures(*, now, limit: int = DEFAULT_FAILURES, hours: int = DEFAULT_FAILURE_HOURS) -> list[dict]:
    runs = (Experiment.objects.filter(status__in=FAILURE_STATUSES, finished_at__gte=now - timedelta(hours=hours))
            .select_related("owner")
            .only("id", "name", "owner__username", "status", "finished_at", "error_message", "message",
                  "worker_host", "attempts", "sweep_id", "epochs_done")
            .order_by("-finished_at", "-id")[:limit])
    return [{"id": run.pk, "name": run.name, "owner": run.owner.username, "status": run.status,
             "reason": run.error_message or run.message or "(no reason recorded)",
             "finished_at": timestamp(run.finished_at), "worker_host": run.worker_host, "attempts": run.attempts,
             "epochs_done": run.epochs_done, "sweep": run.sweep_id} for run in runs]


def storage_per_user() -> dict[str, Any]:
    limit = settings.TUNER_MAX_STORAGE_BYTES_PER_USER
    users = (selectors.users_with_storage(get_user_model().objects.all()).filter(run_count__gt=0)
             .order_by("-storage_bytes", "username")[:STORAGE_USERS])
    rows = [{"user": user.username, "storage_bytes": int(user.storage_bytes), "run_count": user.run_count,
             "fraction_of_limit": round(user.storage_bytes / limit, 4) if limit else None} for user in users]
    return {"limit_bytes": limit or None, "total_bytes": sum(row["storage_bytes"] for row in rows), "users": rows}


def lab_status(*, failures: int = DEFAULT_FAILURES, failure_hours: int = DEFAULT_FAILURE_HOURS) -> dict[str, Any]:
    """The lab status document (the shape: experiments/api/lab_views.py's LabStatusOutputSerializer)."""
    now = timezone.now()
    redis_ok, queue_length = health.redis_status()
    workers, unattributed = workers_status(now=now)
    states = runs_by_state()
    return {
        "generated_at": timestamp(now),
        "heartbeat_seconds": settings.TUNER_WORKER_HEARTBEAT_SECONDS,
        "offline_after_seconds": offline_after_seconds(),
        "health": {"database": True, "redis": redis_ok,
                   "workers_responding": health.cached_live_worker_count() if redis_ok else None},
        "queue": {"broker_length": queue_length, "queued_runs": states[Experiment.Status.QUEUED]},
        "workers_online": sum(1 for worker in workers if worker["online"]),
        "workers": workers,
        "unattributed_runs": unattributed,
        "runs_by_state": states,
        "recent_failures": recent_failures(now=now, limit=failures, hours=failure_hours),
        "failure_hours": failure_hours,
        "storage": storage_per_user(),
    }
