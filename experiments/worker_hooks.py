"""The Celery worker's signal handlers, connected from ExperimentsConfig.ready():

- start-up refuses a broker visibility_timeout that is not above the task time limit;
- once ready, a worker runs the reconciler, and then again every TUNER_RECONCILE_INTERVAL_SECONDS
  from a thread of its main process: every deployment that has a worker heals itself, beat
  or not, and a reconcile never waits in the training queue behind busy pool processes
  (reconcilers on several workers take turns through a Redis lock);
- once ready, the worker's main process records itself (WorkerHeartbeat: node name, host, its
  training processes, concurrency) and again every TUNER_WORKER_HEARTBEAT_SECONDS from a thread of
  its own (cheap: one upsert), and deletes the record when it shuts down (the /lab/ status page);
- on warm shutdown (SIGTERM) running trainings stop at the next batch and re-queue
  themselves instead of making the deploy wait for them; pool children treat SIGTERM (also
  what Celery sends when it cancels tasks on a lost broker connection) the same way, for the
  trainings running at that moment only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from celery.signals import task_prerun, worker_init, worker_ready, worker_shutdown, worker_shutting_down
from django.conf import settings
from django.db import connections
from django.utils import timezone

from experiments.services.execution import request_worker_stop
from experiments.services.reconcile import runs_reconcile
from experiments.services.workers import worker_gone, worker_heartbeat
from tuner_site.celery import UnsafeBrokerSettings, app, check_visibility_timeout

logger = logging.getLogger(__name__)

_child_handler_installed = False
_stopping = threading.Event()  # the worker is shutting down: no more periodic reconciles
_heartbeat_node: dict = {}  # what this worker reports about itself (set when it is ready)


def refuse_unsafe_broker_settings(sender=None, **_) -> None:
    try:
        check_visibility_timeout(app.conf)
    except UnsafeBrokerSettings as exc:
        logger.critical("%s", exc)
        raise SystemExit(f"celery worker: {exc}") from None


def reconcile_once(when: str) -> None:
    try:
        report = runs_reconcile()
        logger.info("%s reconcile: %s", when, report)
    except Exception:  # noqa: BLE001 - the next round tries again; the worker must go on
        logger.exception("%s reconcile failed", when)
    finally:
        connections.close_all()


def reconcile_at_start(sender=None, **_) -> None:
    # Real workers run their consumer in the main thread; the in-thread test worker
    # (celery.contrib.testing) does not, and must not touch other tests' runs.
    if threading.current_thread() is not threading.main_thread():
        return
    reconcile_once("start-up")
    interval = settings.TUNER_RECONCILE_INTERVAL_SECONDS
    if interval > 0:
        threading.Thread(target=_reconcile_periodically, args=(interval,), name="tuner-reconciler",
                         daemon=True).start()


def _reconcile_periodically(interval: float) -> None:
    while not _stopping.wait(interval):
        reconcile_once("periodic")


def _training_pids() -> list[int]:
    """The processes that train: prefork pool children, and this one (solo and threads pools)."""
    try:
        from billiard.process import active_children

        children = [child.pid for child in active_children() if child.pid]
    except Exception:  # noqa: BLE001
        children = []
    return [os.getpid(), *children]


def heartbeat_once() -> None:
    try:
        worker_heartbeat(**_heartbeat_node, pid=os.getpid(), pids=_training_pids())
    except Exception:  # noqa: BLE001 - the next beat tries again (the database may be restarting)
        logger.warning("worker heartbeat failed", exc_info=True)
        connections.close_all()


def start_heartbeat(sender=None, **_) -> None:
    """Record this worker now and every TUNER_WORKER_HEARTBEAT_SECONDS (real workers only, as above)."""
    if threading.current_thread() is not threading.main_thread():
        return
    controller = getattr(sender, "controller", None)
    _heartbeat_node.update(nodename=getattr(sender, "hostname", "") or f"celery@{socket.gethostname()}",
                           hostname=socket.gethostname(), started_at=timezone.now(),
                           concurrency=int(getattr(controller, "concurrency", 0) or 1))
    # All beats from one thread of its own: a database connection opened by the main thread would be
    # inherited by the pool children forked later.
    threading.Thread(target=_beat_periodically, args=(settings.TUNER_WORKER_HEARTBEAT_SECONDS,),
                     name="tuner-worker-heartbeat", daemon=True).start()


def _beat_periodically(interval: float) -> None:
    heartbeat_once()
    while interval > 0 and not _stopping.wait(interval):
        heartbeat_once()


def forget_worker_on_shutdown(sender=None, **_) -> None:
    _stopping.set()
    if not _heartbeat_node:
        return
    try:
        worker_gone(nodename=_heartbeat_node["nodename"])
    except Exception:  # noqa: BLE001 - then it shows offline after a few intervals
        logger.warning("could not remove the worker heartbeat", exc_info=True)


def hand_back_runs_on_shutdown(sender=None, how=None, **_) -> None:
    """Warm shutdown (SIGTERM): running trainings checkpoint-and-requeue at the next batch."""
    _stopping.set()
    if how != "Warm":
        return
    request_worker_stop()
    # Prefork: the trainings run in pool children, which get the signal from us.
    try:
        from billiard.process import active_children

        for child in active_children():
            if child.pid:
                os.kill(child.pid, signal.SIGTERM)
    except Exception:  # noqa: BLE001
        logger.exception("could not forward the shutdown to pool processes")


def install_pool_child_shutdown_handler(**_) -> None:
    """Prefork children: SIGTERM (forwarded above) means "hand the run back", not "die mid-batch".

    Installed when a task starts, not at worker_process_init: billiard resets the children's
    termination handlers after its initializer has run.
    """
    global _child_handler_installed
    from billiard.process import current_process

    if (_child_handler_installed or current_process().name == "MainProcess"
            or threading.current_thread() is not threading.main_thread()):
        return  # solo/threads pools: the worker's own warm-shutdown signal covers them
    signal.signal(signal.SIGTERM, lambda signum, frame: request_worker_stop(
        "the worker stopped it (shutdown, or its broker connection was lost)"))
    _child_handler_installed = True


def connect() -> None:
    worker_init.connect(refuse_unsafe_broker_settings, weak=False, dispatch_uid="tuner-broker-check")
    worker_ready.connect(reconcile_at_start, weak=False, dispatch_uid="tuner-reconcile-at-start")
    worker_ready.connect(start_heartbeat, weak=False, dispatch_uid="tuner-worker-heartbeat")
    worker_shutdown.connect(forget_worker_on_shutdown, weak=False, dispatch_uid="tuner-worker-gone")
    worker_shutting_down.connect(hand_back_runs_on_shutdown, weak=False, dispatch_uid="tuner-hand-back")
    task_prerun.connect(install_pool_child_shutdown_handler, weak=False, dispatch_uid="tuner-child-sigterm")
