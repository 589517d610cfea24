"""The Celery worker's signal handlers, connected from ExperimentsConfig.ready():

- start-up refuses a broker visibility_timeout that is not above the task time limit;
- once ready, a worker runs the reconciler (runs lost by Redis or left by a dead worker);
- on warm shutdown (SIGTERM) running trainings stop at the next batch and re-queue
  themselves instead of making the deploy wait for them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery.signals import task_prerun, worker_init, worker_ready, worker_shutting_down
from django.db import connections

from experiments.services.execution import request_worker_stop
from experiments.services.reconcile import runs_reconcile
from tuner_site.celery import UnsafeBrokerSettings, app, check_visibility_timeout

logger = logging.getLogger(__name__)

_child_handler_installed = False


def refuse_unsafe_broker_settings(sender=None, **_) -> None:
    try:
        check_visibility_timeout(app.conf)
    except UnsafeBrokerSettings as exc:
        logger.critical("%s", exc)
        raise SystemExit(f"celery worker: {exc}") from None


def reconcile_at_start(sender=None, **_) -> None:
    # Real workers run their consumer in the main thread; the in-thread test worker
    # (celery.contrib.testing) does not, and must not touch other tests' runs.
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        report = runs_reconcile()
        logger.info("start-up reconcile: %s", report)
    except Exception:  # noqa: BLE001 - the beat schedule tries again; the worker must start
        logger.exception("start-up reconcile failed")
    finally:
        connections.close_all()


def hand_back_runs_on_shutdown(sender=None, how=None, **_) -> None:
    """Warm shutdown (SIGTERM): running trainings checkpoint-and-requeue at the next batch."""
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
    signal.signal(signal.SIGTERM, lambda signum, frame: request_worker_stop())
    _child_handler_installed = True


def connect() -> None:
    worker_init.connect(refuse_unsafe_broker_settings, weak=False, dispatch_uid="tuner-broker-check")
    worker_ready.connect(reconcile_at_start, weak=False, dispatch_uid="tuner-reconcile-at-start")
    worker_shutting_down.connect(hand_back_runs_on_shutdown, weak=False, dispatch_uid="tuner-hand-back")
    task_prerun.connect(install_pool_child_shutdown_handler, weak=False, dispatch_uid="tuner-child-sigterm")
