"""The Celery application. Configuration comes from Django settings (CELERY_* names).

Worker hooks (reliability, see experiments/services.py "reliability"):
- start-up refuses a broker visibility_timeout that is not above the task time limit;
- once ready, a worker runs the reconciler (runs lost by Redis or left by a dead worker);
- on warm shutdown (SIGTERM) running trainings stop at the next batch and re-queue
  themselves instead of making the deploy wait for them.
"""

import logging
import os
import signal
import threading

from celery import Celery
from celery.signals import task_prerun, worker_init, worker_ready, worker_shutting_down

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuner_site.settings")

app = Celery("tuner")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

REDIS_DEFAULT_VISIBILITY_TIMEOUT = 3600  # kombu's Redis transport default


class UnsafeBrokerSettings(RuntimeError):
    pass


def check_visibility_timeout(conf) -> None:
    """Raise UnsafeBrokerSettings unless the broker's visibility timeout exceeds the task time limit.

    Redis re-delivers an unacknowledged message after the visibility timeout; if that can
    happen while a healthy worker is still within its time limit, a long run gets a second
    worker that takes its lease and the first one's work is thrown away.
    """
    options = conf.broker_transport_options or {}
    visibility = options.get("visibility_timeout", REDIS_DEFAULT_VISIBILITY_TIMEOUT)
    limit = conf.task_time_limit
    if limit is None:
        from django.conf import settings

        limit = getattr(settings, "TUNER_MAX_RUN_SECONDS", None)
    if limit is not None and visibility <= limit:
        raise UnsafeBrokerSettings(
            f"Refusing to start: the broker visibility_timeout ({visibility} s) is not above the task "
            f"time limit ({limit} s). Redis would hand a run that is still training to a second "
            "worker. Raise CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] (settings: "
            "CELERY_VISIBILITY_TIMEOUT) or lower TUNER_MAX_RUN_SECONDS.")


@worker_init.connect
def _refuse_unsafe_broker_settings(sender=None, **_):
    try:
        check_visibility_timeout(app.conf)
    except UnsafeBrokerSettings as exc:
        logger.critical("%s", exc)
        raise SystemExit(f"celery worker: {exc}") from None


@worker_ready.connect
def _reconcile_at_start(sender=None, **_):
    # Real workers run their consumer in the main thread; the in-thread test worker
    # (celery.contrib.testing) does not, and must not touch other tests' runs.
    if threading.current_thread() is not threading.main_thread():
        return
    from django.db import connections

    from experiments import services

    try:
        report = services.runs_reconcile()
        logger.info("start-up reconcile: %s", report)
    except Exception:  # noqa: BLE001 - the beat schedule tries again; the worker must start
        logger.exception("start-up reconcile failed")
    finally:
        connections.close_all()


@worker_shutting_down.connect
def _hand_back_runs_on_shutdown(sender=None, how=None, **_):
    """Warm shutdown (SIGTERM): running trainings checkpoint-and-requeue at the next batch."""
    if how != "Warm":
        return
    from experiments import services

    services.request_worker_stop()
    # Prefork: the trainings run in pool children, which get the signal from us.
    try:
        from billiard.process import active_children

        for child in active_children():
            if child.pid:
                os.kill(child.pid, signal.SIGTERM)
    except Exception:  # noqa: BLE001
        logger.exception("could not forward the shutdown to pool processes")


@task_prerun.connect
def _pool_child_shutdown_handler(**_):
    """Prefork children: SIGTERM (forwarded above) means "hand the run back", not "die mid-batch".

    Installed when a task starts, not at worker_process_init: billiard resets the children's
    termination handlers after its initializer has run.
    """
    global _child_handler_installed
    from billiard.process import current_process

    if (_child_handler_installed or current_process().name == "MainProcess"
            or threading.current_thread() is not threading.main_thread()):
        return  # solo/threads pools: the worker's own warm-shutdown signal covers them
    from experiments import services

    signal.signal(signal.SIGTERM, lambda signum, frame: services.request_worker_stop())
    _child_handler_installed = True


_child_handler_installed = False
