"""The Celery worker's signal handlers, connected from ExperimentsConfig.ready():

- start-up refuses a broker visibility_timeout that is not above the task time limit;
- once ready, a worker runs the reconciler, and then again every TUNER_RECONCILE_INTERVAL_SECONDS
  from a thread of its main process: every deployment that has a worker heals itself, beat
  or not, and a reconcile never waits in the training queue behind busy pool processes
  (reconcilers on several workers take turns through a Redis lock);
- on warm shutdown (SIGTERM) running trainings stop at the next batch and re-queue
  themselves instead of making the deploy wait for them; pool children treat SIGTERM (also
  what Celery sends when it cancels tasks on a lost broker connection) the same way, for the
  trainings running at that moment only.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery.signals import task_prerun, worker_init, worker_ready, worker_shutting_down
from django.conf import settings
from django.db import connections

from experiments.services.execution import request_worker_stop
from experiments.services.reconcile import runs_reconcile
from tuner_site.celery import UnsafeBrokerSettings, app, check_visibility_timeout

logger = logging.getLogger(__name__)

_child_handler_installed = False
_stopping = threading.Event()  # the worker is shutting down: no more periodic reconciles


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
    worker_shutting_down.connect(hand_back_runs_on_shutdown, weak=False, dispatch_uid="tuner-hand-back")
    task_prerun.connect(install_pool_child_shutdown_handler, weak=False, dispatch_uid="tuner-child-sigterm")
