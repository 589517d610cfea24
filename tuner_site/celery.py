"""The Celery application. Configuration comes from Django settings (CELERY_* names).

It imports nothing of the app: the worker's signal handlers live in experiments/worker_hooks.py
and are connected from ExperimentsConfig.ready(), which Celery's Django fixup runs (django.setup())
before the worker starts.
"""

import logging
import os

from celery import Celery

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
